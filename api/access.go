package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/internal/accesslog"
)

// AccessLog is the PHI access log (internal/accesslog.Log).
type AccessLog interface {
	// Healthy is nil while entries can be written; a PHI read must not
	// start otherwise (fail closed).
	Healthy() error
	// Record keeps an entry; it never blocks.
	Record(accesslog.Entry)
}

// phiAccess says whether a route's answer holds PHI, and whose. Every
// route that answers with a body must say (NewServer refuses one that
// does not): a new read cannot skip the access log by omission.
type phiAccess int

const (
	phiUndeclared phiAccess = iota
	// noPHI: the answer holds no PHI (ids, codes, counts, checkpoints).
	noPHI
	// patientPHI: the answer holds PHI of the patient whose id is the
	// path's :id.
	patientPHI
	// namedPHI: the answer holds PHI of the patients the handler names
	// with accessed (search results, a resource's patient, an export).
	namedPHI
)

// HeaderPurposeOfUse says why PHI is read: an HL7 PurposeOfUse code,
// TREAT when absent.
const HeaderPurposeOfUse = "X-Purpose-Of-Use"

// accessKey holds a PHI read's access in the Echo context.
const accessKey = "chartstream.access"

// access collects whose PHI a response holds.
type access struct {
	patients []uuid.UUID
	all      bool
}

// accessed names patients whose PHI the response holds. Only PHI routes
// have an access; on others it is a wiring bug and panics.
func accessed(c echo.Context, patients ...uuid.UUID) {
	a := c.Get(accessKey).(*access)
	for _, p := range patients {
		if p != uuid.Nil {
			a.patients = append(a.patients, p)
		}
	}
}

// accessedAll says the response may hold PHI of every patient of the
// tenant (an export without a patient).
func accessedAll(c echo.Context) { c.Get(accessKey).(*access).all = true }

// logAccess records, for a route whose answer holds PHI, who read whose
// PHI, where, when and why: one entry when the response starts with a
// 2xx, so a refused or failed read records nothing. It checks the log
// first and refuses the read (503) while entries cannot be written, and
// refuses a malformed X-Purpose-Of-Use (400).
func (s *Server) logAccess(r route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			purpose := accesslog.DefaultPurpose
			if v := c.Request().Header.Get(HeaderPurposeOfUse); v != "" {
				purpose = v
			}
			if err := s.deps.Access.Healthy(); err != nil {
				c.Response().Header().Set(echo.HeaderRetryAfter, "1")
				return err
			}
			a := &access{}
			if r.PHI == patientPHI {
				if id, err := pathID(c, "id"); err == nil {
					a.patients = []uuid.UUID{id}
				}
			}
			c.Set(accessKey, a)
			res := c.Response()
			res.Before(func() {
				if res.Status < http.StatusOK || res.Status >= http.StatusMultipleChoices {
					return
				}
				cl := callerOf(c)
				roles := make([]string, len(cl.Roles))
				for i, role := range cl.Roles {
					roles[i] = string(role)
				}
				s.deps.Access.Record(accesslog.Entry{Tenant: cl.Tenant, AccessedAt: time.Now().UTC(), Actor: cl.Subject, Roles: roles,
					Patients: a.patients, AllPatients: a.all, Route: r.Method + " " + r.Path, Purpose: purpose,
					RequestID: res.Header().Get(echo.HeaderXRequestID)})
			})
			return next(c)
		}
	}
}

// validPurpose is the rule of X-Purpose-Of-Use (headerRules).
func validPurpose(v string) bool { return accesslog.ValidPurpose(v) }

// checkPHIDeclared panics on a route that answers with a body without
// saying whether it holds PHI.
func checkPHIDeclared(routes []route) {
	for _, r := range routes {
		if !r.command() && r.PHI == phiUndeclared {
			panic("api: route " + r.Method + " " + r.Path + " does not declare whether it returns PHI")
		}
	}
}
