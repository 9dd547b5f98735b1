package deploy

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"
)

// Terraform's and OpenTofu's CLIs cannot be built from the Go module
// proxy (their go.mod files carry replace directives), so the module is
// checked here with HashiCorp's own HCL parser: parsed, formatted as
// hclwrite formats it (terraform fmt's rules), every reference declared,
// every variable described, typed and used. Where a terraform or tofu
// binary is on PATH, its fmt -check runs too. terraform validate and plan
// need the providers from their registry and an AWS account: not here.

func terraformDir(t *testing.T) string { return filepath.Join(root(t), "deploy", "terraform", "aws") }

// tfModule is what the module declares and what it refers to.
type tfModule struct {
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	resources map[string]*hclsyntax.Block // "type.name"
	data      map[string]bool             // "type.name"
	locals    map[string]bool
	refs      []hcl.Traversal
}

func parseTerraform(t *testing.T) (*tfModule, map[string][]byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(terraformDir(t), "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	m := &tfModule{variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
		resources: map[string]*hclsyntax.Block{}, data: map[string]bool{}, locals: map[string]bool{}}
	src := map[string][]byte{}
	parser := hclparse.NewParser()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src[filepath.Base(f)] = b
		file, diags := parser.ParseHCL(b, filepath.Base(f))
		if diags.HasErrors() {
			t.Fatalf("%s: %s", filepath.Base(f), diags.Error())
		}
		body := file.Body.(*hclsyntax.Body)
		for _, blk := range body.Blocks {
			switch blk.Type {
			case "variable":
				m.variables[blk.Labels[0]] = blk
			case "output":
				m.outputs[blk.Labels[0]] = blk
			case "resource":
				m.resources[blk.Labels[0]+"."+blk.Labels[1]] = blk
			case "data":
				m.data[blk.Labels[0]+"."+blk.Labels[1]] = true
			case "locals":
				for name := range blk.Body.Attributes {
					m.locals[name] = true
				}
			}
		}
		m.refs = append(m.refs, traversals(body)...)
	}
	return m, src
}

// traversals are every reference in body's expressions, nested blocks
// too; a variable's type (string, list(string)) is a type, not a reference.
func traversals(body *hclsyntax.Body) []hcl.Traversal {
	var out []hcl.Traversal
	for _, blk := range body.Blocks {
		for name, attr := range blk.Body.Attributes {
			if blk.Type == "variable" && name == "type" {
				continue
			}
			out = append(out, attr.Expr.Variables()...)
		}
		out = append(out, traversals(blk.Body)...)
	}
	return out
}

// literal is the value of block's attribute when it is a constant.
func literal(blk *hclsyntax.Block, name string) (cty.Value, bool) {
	attr, ok := blk.Body.Attributes[name]
	if !ok {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(nil)
	return v, !diags.HasErrors()
}

func TestTerraformFormat(t *testing.T) {
	t.Parallel()
	_, src := parseTerraform(t)
	for name, b := range src {
		if formatted := hclwrite.Format(b); !bytes.Equal(formatted, b) {
			t.Errorf("%s is not formatted (terraform fmt would change it)", name)
		}
	}
	for _, tool := range []string{"tofu", "terraform"} {
		bin, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", terraformDir(t))
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s fmt -check: %v\n%s", tool, err, out)
		}
	}
}

// Every variable is described, typed and used; the ones without a default
// are the ones a deployer must give; every reference is declared.
func TestTerraformModule(t *testing.T) {
	t.Parallel()
	m, _ := parseTerraform(t)
	used := map[string]bool{}
	for _, tr := range m.refs {
		root := tr.RootName()
		var next string
		if len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				next = a.Name
			}
		}
		switch root {
		case "var":
			used[next] = true
			if m.variables[next] == nil {
				t.Errorf("var.%s is not declared", next)
			}
		case "local":
			if !m.locals[next] {
				t.Errorf("local.%s is not declared", next)
			}
		case "data":
			if len(tr) < 3 || !m.data[next+"."+tr[2].(hcl.TraverseAttr).Name] {
				t.Errorf("data reference %s is not declared", next)
			}
		case "count", "each", "path", "terraform", "self", "module":
		default:
			if m.resources[root+"."+next] == nil {
				t.Errorf("%s.%s is not declared", root, next)
			}
		}
	}
	var required []string
	for name, v := range m.variables {
		if d, ok := literal(v, "description"); !ok || d.Type() != cty.String || len(d.AsString()) < 10 {
			t.Errorf("variable %s has no description", name)
		}
		if _, ok := v.Body.Attributes["type"]; !ok {
			t.Errorf("variable %s has no type", name)
		}
		if _, ok := v.Body.Attributes["default"]; !ok {
			required = append(required, name)
		}
		if !used[name] {
			t.Errorf("variable %s is never used", name)
		}
	}
	slices.Sort(required)
	if want := []string{"certificate_arn", "environment", "region"}; !slices.Equal(required, want) {
		t.Errorf("required variables %v, want %v", required, want)
	}
	for _, name := range []string{"environment", "region", "vpc_cidr", "certificate_arn", "db_engine_version", "kms_deletion_window_days"} {
		if v := m.variables[name]; v == nil || !hasBlock(v.Body, "validation") {
			t.Errorf("variable %s has no validation", name)
		}
	}
	for name, o := range m.outputs {
		if d, ok := literal(o, "description"); !ok || d.Type() != cty.String || d.AsString() == "" {
			t.Errorf("output %s has no description", name)
		}
	}
	for _, name := range []string{"eks_cluster_name", "chartstream_role_arn", "db_endpoint", "db_replica_endpoint", "redis_endpoint",
		"redis_url_secret_arn", "tenant_keys_kms_key_arn", "exports_bucket", "alb_dns_name", "public_subnet_cidrs", "data_subnet_cidrs"} {
		if m.outputs[name] == nil {
			t.Errorf("no output %s", name)
		}
	}
}

func hasBlock(body *hclsyntax.Body, typ string) bool {
	return slices.ContainsFunc(body.Blocks, func(b *hclsyntax.Block) bool { return b.Type == typ })
}

// The pieces the issue names, with the settings that make them safe.
func TestTerraformResources(t *testing.T) {
	t.Parallel()
	m, _ := parseTerraform(t)
	is := func(addr, attr string, want cty.Value) {
		t.Helper()
		blk := m.resources[addr]
		if blk == nil {
			t.Errorf("no %s", addr)
			return
		}
		if got, ok := literal(blk, attr); !ok || !got.RawEquals(want) {
			t.Errorf("%s.%s = %#v, want %#v", addr, attr, got, want)
		}
	}
	has := func(addr, attr string) {
		t.Helper()
		if blk := m.resources[addr]; blk == nil || (blk.Body.Attributes[attr] == nil && !hasBlock(blk.Body, attr)) {
			t.Errorf("%s has no %s", addr, attr)
		}
	}
	is("aws_db_instance.primary", "iam_database_authentication_enabled", cty.True)
	is("aws_db_instance.primary", "storage_encrypted", cty.True)
	is("aws_db_instance.primary", "publicly_accessible", cty.False)
	has("aws_db_instance.replica", "replicate_source_db")
	is("aws_db_instance.replica", "iam_database_authentication_enabled", cty.True)
	is("aws_elasticache_replication_group.main", "transit_encryption_enabled", cty.True)
	is("aws_elasticache_replication_group.main", "at_rest_encryption_enabled", cty.True)
	has("aws_elasticache_replication_group.main", "auth_token")
	is("aws_kms_key.tenant_keys", "enable_key_rotation", cty.True)
	has("aws_eks_cluster.main", "encryption_config")
	has("aws_eks_node_group.main", "node_role_arn")
	for _, attr := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		is("aws_s3_bucket_public_access_block.exports", attr, cty.True)
	}
	is("aws_lb.api", "load_balancer_type", cty.StringVal("application"))
	is("aws_lb_listener.https", "protocol", cty.StringVal("HTTPS"))
	is("aws_eks_addon.vpc_cni", "addon_name", cty.StringVal("vpc-cni"))
	if blk := m.resources["aws_s3_bucket_versioning.exports"]; blk == nil || !strings.Contains(string(blockText(t, blk)), `"Enabled"`) {
		t.Error("the exports bucket is not versioned")
	}
	if blk := m.resources["aws_s3_bucket_server_side_encryption_configuration.exports"]; blk == nil || !strings.Contains(string(blockText(t, blk)), `"aws:kms"`) {
		t.Error("the exports bucket is not encrypted with KMS")
	}
}

// blockText is the source text of a block.
func blockText(t *testing.T, blk *hclsyntax.Block) []byte {
	t.Helper()
	r := blk.Range()
	b, err := os.ReadFile(filepath.Join(terraformDir(t), r.Filename))
	if err != nil {
		t.Fatal(err)
	}
	return r.SliceBytes(b)
}

// The production Helm values fit the module's defaults: the ALB's NodePort,
// the ALB's subnets as the API's only source, the data subnets as the
// database's and Redis's only destination.
func TestProductionValuesMatchTerraform(t *testing.T) {
	t.Parallel()
	m, _ := parseTerraform(t)
	def := func(name string) cty.Value {
		t.Helper()
		v, ok := literal(m.variables[name], "default")
		if !ok {
			t.Fatalf("variable %s has no constant default", name)
		}
		return v
	}
	vpc := netip.MustParsePrefix(def("vpc_cidr").AsString())
	zones, _ := def("availability_zones").AsBigFloat().Int64()
	// cidrsubnet(vpc_cidr, 4, i): the i-th /(n+4) block of the VPC.
	subnet := func(i int) string {
		a := vpc.Addr().As4()
		bits := vpc.Bits() + 4
		n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		n += uint32(i) << (32 - bits)
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), bits).String()
	}
	var public, data []string
	for i := range int(zones) {
		public = append(public, subnet(i))
		data = append(data, subnet(i+6))
	}
	var values struct {
		Serve struct {
			Service struct {
				Type                  string `yaml:"type"`
				NodePort              int64  `yaml:"nodePort"`
				ExternalTrafficPolicy string `yaml:"externalTrafficPolicy"`
			} `yaml:"service"`
		} `yaml:"serve"`
		NetworkPolicy struct {
			APIFrom []struct {
				IPBlock struct{ CIDR string } `yaml:"ipBlock"`
			} `yaml:"apiFrom"`
			Egress map[string]struct {
				To []struct {
					IPBlock struct{ CIDR string } `yaml:"ipBlock"`
				} `yaml:"to"`
			} `yaml:"egress"`
		} `yaml:"networkPolicy"`
	}
	if err := yaml.Unmarshal([]byte(readRel(t, "deploy/helm/values-production.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	port, _ := def("api_node_port").AsBigFloat().Int64()
	if svc := values.Serve.Service; svc.Type != "NodePort" || svc.NodePort != port || svc.ExternalTrafficPolicy != "Local" {
		t.Errorf("serve.service %+v, want NodePort %d with externalTrafficPolicy Local", svc, port)
	}
	cidrs := func(blocks []struct {
		IPBlock struct{ CIDR string } `yaml:"ipBlock"`
	}) []string {
		var out []string
		for _, b := range blocks {
			out = append(out, b.IPBlock.CIDR)
		}
		return out
	}
	if got := cidrs(values.NetworkPolicy.APIFrom); !slices.Equal(got, public) {
		t.Errorf("networkPolicy.apiFrom %v, want the public subnets %v", got, public)
	}
	for _, name := range []string{"postgres", "redis"} {
		if got := cidrs(values.NetworkPolicy.Egress[name].To); !slices.Equal(got, data) {
			t.Errorf("networkPolicy.egress.%s.to %v, want the data subnets %v", name, got, data)
		}
	}
}
