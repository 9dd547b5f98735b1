// Package asyncapi generates the AsyncAPI 3.0 document of the platform's
// event streams (served at /asyncapi.json) from the event registry and the
// de-identification rules: one channel for the clinical stream and one for
// the de-identified stream, and one message, with its JSON Schema, per
// event type and schema version on each. Nothing is written by hand, so a
// new event type cannot be left out.
package asyncapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/workers"
)

// Streams names the streams and their subject prefixes.
type Streams struct {
	Raw, RawPrefix, Deid, DeidPrefix string
}

// DefaultStreams are the relay's and the de-identifier's defaults.
var DefaultStreams = Streams{Raw: workers.DefaultStream, RawPrefix: workers.DefaultSubjectPrefix,
	Deid: workers.DefaultDeidStream, DeidPrefix: workers.DefaultDeidSubjectPrefix}

// Channel ids in the document.
const (
	RawChannel  = "clinical"
	DeidChannel = "deidentified"
)

// schemaFormat says the payloads are JSON Schema draft-07.
const schemaFormat = "application/schema+json;version=draft-07"

// MessageKey is the document's key of an event type's message on a
// channel: "<channel>.<event type>.v<schema version>".
func MessageKey(channel, eventType string, schemaVersion int) string {
	return channel + "." + eventType + ".v" + itoa(schemaVersion)
}

// Document returns the AsyncAPI 3.0 document. Every spec needs a Payload
// and a de-identification rule.
func Document(specs []chartstream.EventSpec, rules *deid.Deidentifier, streams Streams) ([]byte, error) {
	specs = slices.Clone(specs)
	slices.SortFunc(specs, func(a, b chartstream.EventSpec) int { return strings.Compare(a.Type, b.Type) })
	messages := Schema{}
	raw, deidentified := Schema{}, Schema{}
	var rawRefs, deidRefs []Schema
	var types, streamTypes []string
	for _, spec := range specs {
		if spec.Payload == nil {
			return nil, fmt.Errorf("asyncapi: event type %s has no payload type", spec.Type)
		}
		rule, ok := rules.Rule(spec.Type)
		if !ok {
			return nil, fmt.Errorf("asyncapi: event type %s has no de-identification rule", spec.Type)
		}
		types = append(types, spec.Type)
		if st, _, _ := strings.Cut(spec.Type, "."); !slices.Contains(streamTypes, st) {
			streamTypes = append(streamTypes, st)
		}
		rk, dk := MessageKey(RawChannel, spec.Type, spec.SchemaVersion), MessageKey(DeidChannel, spec.Type, spec.SchemaVersion)
		messages[rk] = message(spec, "clinical event, PHI sealed", rawHeaders(), envelope(spec))
		messages[dk] = message(spec, "de-identified event (HIPAA Safe Harbor)", deidHeaders(), rules.MessageSchema(rule))
		raw[rk], deidentified[dk] = ref("#/components/messages/"+rk), ref("#/components/messages/"+dk)
		rawRefs = append(rawRefs, ref("#/channels/"+RawChannel+"/messages/"+rk))
		deidRefs = append(deidRefs, ref("#/channels/"+DeidChannel+"/messages/"+dk))
	}
	params := func(what string) Schema {
		return Schema{
			"tenant_id":   Schema{"description": "the tenant's id (UUID): a subscriber's consumer delivers its tenant's " + what + " only"},
			"stream_type": Schema{"enum": streamTypes},
			"event_type":  Schema{"enum": types},
		}
	}
	doc := Schema{
		"asyncapi": "3.0.0",
		"info": Schema{"title": "chartstream event streams", "version": "1",
			"description": "Every committed clinical event, on NATS JetStream. `" + streams.Raw + "` carries them as recorded, PHI sealed; `" +
				streams.Deid + "` carries them de-identified under HIPAA Safe Harbor. External consumers read one tenant's subjects through " +
				"a durable consumer made for them (`chartstream subscriber create`), with credentials that can read nothing else."},
		"defaultContentType": "application/json",
		"channels": Schema{
			RawChannel: Schema{"address": streams.RawPrefix + ".{tenant_id}.{stream_type}.{event_type}", "title": "stream " + streams.Raw,
				"description": "One message per committed event, exactly once, in each tenant's commit order. Signed by the relay (Chartstream-Signature).",
				"parameters":  params("events"), "messages": raw},
			DeidChannel: Schema{"address": streams.DeidPrefix + ".{tenant_id}.{stream_type}.{event_type}", "title": "stream " + streams.Deid,
				"description": "One message per clinical event, de-identified, exactly once, in each tenant's order. Ids are keyed pseudonyms (stable within the tenant), dates years (or shifted, when configured). An erased patient's events are withheld; the patient.erased message names the pseudonym to forget.",
				"parameters":  params("de-identified events"), "messages": deidentified},
		},
		"operations": Schema{
			"receiveClinical":     Schema{"action": "receive", "channel": ref("#/channels/" + RawChannel), "messages": rawRefs},
			"receiveDeidentified": Schema{"action": "receive", "channel": ref("#/channels/" + DeidChannel), "messages": deidRefs},
		},
		"components": Schema{"messages": messages},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func ref(to string) Schema { return Schema{"$ref": to} }

// message is one event type's message on a channel.
func message(spec chartstream.EventSpec, what string, headers, payload Schema) Schema {
	return Schema{
		"name":        spec.Type,
		"title":       spec.Type + " v" + itoa(spec.SchemaVersion),
		"summary":     what,
		"contentType": "application/json",
		"headers":     Schema{"schemaFormat": schemaFormat, "schema": headers},
		"payload":     Schema{"schemaFormat": schemaFormat, "schema": payload},
	}
}

// headerSchema is an object of string headers, the named ones required.
func headerSchema(required []string, optional ...string) Schema {
	props := Schema{}
	for _, h := range append(slices.Clone(required), optional...) {
		props[h] = Schema{"type": "string"}
	}
	return Schema{"type": "object", "properties": props, "required": required}
}

func rawHeaders() Schema {
	return headerSchema([]string{"Nats-Msg-Id", workers.HeaderTenant, workers.HeaderStreamType, workers.HeaderStreamID, workers.HeaderVersion,
		workers.HeaderEventType, workers.HeaderSchemaVersion, workers.HeaderPosition, workers.HeaderTxID, workers.HeaderPrevTxID, workers.HeaderPrevPosition},
		workers.HeaderCorrelationID, workers.HeaderSignature)
}

func deidHeaders() Schema {
	return headerSchema([]string{workers.HeaderTenant, workers.HeaderEventType, workers.HeaderSchemaVersion, workers.HeaderDeidPrev,
		workers.HeaderSignature}, "Nats-Msg-Id")
}

func itoa(n int) string { return strconv.Itoa(n) }
