// Package testutil holds helpers for CDK template assertion tests: an app that skips bundling, panics turned into
// test failures, and lookups of resources in a synthesized template.
//
// jsii is not safe for concurrent use: tests using these helpers must not call t.Parallel.
package testutil

import (
	"fmt"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// NewApp returns an app whose stacks skip asset bundling, so template tests neither compile nor need Go on PATH.
func NewApp() awscdk.App {
	return awscdk.NewApp(&awscdk.AppProps{
		Context: &map[string]interface{}{"aws:cdk:bundling-stacks": []interface{}{}},
	})
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
