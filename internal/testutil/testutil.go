// Package testutil holds helpers for CDK template assertion tests: an app that skips bundling, panics turned into
// test failures, and lookups of resources in a synthesized template.
//
// jsii is not safe for concurrent use: tests using these helpers must not call t.Parallel.
package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// FeatureFlagsEnv names the environment variable choosing the feature flags of test apps: unset or "recommended"
// for RecommendedFeatureFlags (what a new `cdk init` app has), "none" for CDK's defaults without any flag (what an
// older app has). Some flags change this construct's template (@aws-cdk/aws-iam:minimizePolicies,
// @aws-cdk/core:validateAgainstDefaultRules, @aws-cdk/aws-lambda:useCdkManagedLogGroup, ...): `make test` runs the
// template tests both ways.
const FeatureFlagsEnv = "KDP_TEST_FEATURE_FLAGS"

// AppContext returns the context of a test app: the feature flags FeatureFlagsEnv chooses, plus extra. It panics on
// an unknown FeatureFlagsEnv value, so a typo cannot silently test the wrong set.
func AppContext(extra map[string]interface{}) map[string]interface{} {
	ctx := map[string]interface{}{}
	switch v := os.Getenv(FeatureFlagsEnv); v {
	case "", "recommended":
		ctx = RecommendedFeatureFlags()
	case "none":
	default:
		panic(fmt.Sprintf("testutil: %s=%q, want \"recommended\" or \"none\"", FeatureFlagsEnv, v))
	}
	for k, v := range extra {
		ctx[k] = v
	}
	return ctx
}

// NewApp returns an app whose stacks skip asset bundling, so template tests neither compile nor need Go on PATH,
// with the feature flags FeatureFlagsEnv chooses.
func NewApp() awscdk.App {
	ctx := AppContext(map[string]interface{}{"aws:cdk:bundling-stacks": []interface{}{}})
	return awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
}

// NewStack returns a stack named "Test" in a fresh app from NewApp, in a fixed account and region.
func NewStack() awscdk.Stack {
	return awscdk.NewStack(NewApp(), jsii.String("Test"), &awscdk.StackProps{
		Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
	})
}

// Must runs fn and turns a panic (how jsii and constructs report errors in Go) into t.Fatal.
func Must(t testing.TB, fn func()) {
	t.Helper()
	if msg, panicked := catch(fn); panicked {
		t.Fatalf("unexpected panic: %s", msg)
	}
}

// PanicMessage runs fn, which must panic, and returns the panic's message; it fails the test if fn returns normally.
// Use a fresh app after an expected panic: jsii may leave a half-built tree behind.
func PanicMessage(t testing.TB, fn func()) string {
	t.Helper()
	msg, panicked := catch(fn)
	if !panicked {
		t.Fatal("expected a panic, got none")
	}
	return msg
}

func catch(fn func()) (msg string, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			msg, panicked = fmt.Sprint(r), true
		}
	}()
	fn()
	return "", false
}

// Template synthesizes stack and returns its template as a Go map, failing the test on a synth error.
func Template(t testing.TB, stack awscdk.Stack) map[string]interface{} {
	t.Helper()
	var tmpl map[string]interface{}
	Must(t, func() {
		tmpl = *assertions.Template_FromStack(stack, nil).ToJSON()
	})
	return tmpl
}

// Resources returns the resources of type typ (for example "AWS::Lambda::Function") by logical ID.
func Resources(tmpl map[string]interface{}, typ string) map[string]map[string]interface{} {
	out := map[string]map[string]interface{}{}
	resources, _ := tmpl["Resources"].(map[string]interface{})
	for id, r := range resources {
		res, _ := r.(map[string]interface{})
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// OneResource returns the logical ID and the whole resource (Type, Properties, DependsOn, ...) of the only resource
// of type typ, failing the test unless there is exactly one.
func OneResource(t testing.TB, tmpl map[string]interface{}, typ string) (string, map[string]interface{}) {
	t.Helper()
	found := Resources(tmpl, typ)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d: %v", typ, len(found), LogicalIDs(found))
	}
	for id, r := range found {
		return id, r
	}
	return "", nil
}

// Properties returns the Properties of the only resource of type typ (see OneResource).
func Properties(t testing.TB, tmpl map[string]interface{}, typ string) map[string]interface{} {
	t.Helper()
	_, r := OneResource(t, tmpl, typ)
	props, _ := r["Properties"].(map[string]interface{})
	return props
}

// LogicalIDs returns the sorted keys of a Resources result.
func LogicalIDs(resources map[string]map[string]interface{}) []string {
	ids := make([]string, 0, len(resources))
	for id := range resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Get walks v (a template or part of one) along keys: map keys, or decimal indexes into lists. It returns nil where
// the path does not exist.
func Get(v interface{}, keys ...string) interface{} {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]interface{}:
			v = x[k]
		case []interface{}:
			var i int
			if _, err := fmt.Sscanf(k, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// Warnings synthesizes stack and returns the text of every warning annotation on it.
func Warnings(t testing.TB, stack awscdk.Stack) []string {
	t.Helper()
	var out []string
	Must(t, func() {
		for _, m := range *assertions.Annotations_FromStack(stack).FindWarning(jsii.String("*"), assertions.Match_AnyValue()) {
			out = append(out, fmt.Sprint(m.Entry.Data))
		}
	})
	return out
}

// CheckFeatureFlags fails the test unless the cdk.json at path sets exactly RecommendedFeatureFlags in its context
// (other context keys, such as cli-telemetry, may be there too), so the app synthesizes under the flags its tests use.
func CheckFeatureFlags(t testing.TB, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cdk struct{ Context map[string]interface{} }
	if err := json.Unmarshal(raw, &cdk); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for k, want := range RecommendedFeatureFlags() {
		got, ok := cdk.Context[k]
		if !ok {
			t.Errorf("%s: feature flag %s is not set (run scripts/feature-flags.sh)", path, k)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: feature flag %s is %v, want %v (run scripts/feature-flags.sh)", path, k, got, want)
		}
	}
	for k := range cdk.Context {
		if _, ok := RecommendedFeatureFlags()[k]; !ok && strings.HasPrefix(k, "@aws-cdk") {
			t.Errorf("%s: feature flag %s is not one a new app sets (run scripts/feature-flags.sh)", path, k)
		}
	}
}
