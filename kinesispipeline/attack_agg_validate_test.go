package kinesispipeline_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// TestAttackAggSynthOneProblemEach: each bad aggregate prop is reported at synth once, by one line naming it.
func TestAttackAggSynthOneProblemEach(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *kinesispipeline.AggregateProps)
		want string
	}{
		{"half a second", func(a *kinesispipeline.AggregateProps) { a.Window = awscdk.Duration_Millis(jsii.Number(500)) }, "Window"},
		{"1.5 seconds", func(a *kinesispipeline.AggregateProps) { a.Window = awscdk.Duration_Millis(jsii.Number(1500)) }, "Window"},
		{"7 minutes", func(a *kinesispipeline.AggregateProps) { a.Window = awscdk.Duration_Minutes(jsii.Number(7)) }, "windowSeconds 420"},
		{"zero", func(a *kinesispipeline.AggregateProps) { a.Window = awscdk.Duration_Seconds(jsii.Number(0)) }, "windowSeconds 0"},
		{"empty group path", func(a *kinesispipeline.AggregateProps) { a.GroupBy = jsii.Strings("") }, "groupBy[0]"},
		{"unknown kind", func(a *kinesispipeline.AggregateProps) { (*a.Measures)[1].Kind = "avg" }, `kind "avg"`},
		{"millis without a time path", func(a *kinesispipeline.AggregateProps) { a.TimeInMilliseconds = jsii.Bool(true) }, "timeUnit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := perCategory()
			tt.edit(a)
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
					Aggregates: &[]*kinesispipeline.AggregateProps{a}})
			})
			n := strings.Count(msg, "Aggregates[0]")
			if n != 1 || !strings.Contains(msg, tt.want) {
				t.Errorf("want one problem containing %q, got %d:\n%s", tt.want, n, msg)
			}
		})
	}
}
