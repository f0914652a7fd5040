package testutil

import "testing"

func TestAppContext(t *testing.T) {
	tests := []struct {
		env       string
		wantFlags bool
	}{{"", true}, {"recommended", true}, {"none", false}}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(FeatureFlagsEnv, tt.env)
			ctx := AppContext(map[string]interface{}{"extra": 1})
			if ctx["extra"] != 1 {
				t.Errorf("extra context lost: %v", ctx)
			}
			_, has := ctx["@aws-cdk/aws-iam:minimizePolicies"]
			if has != tt.wantFlags || (tt.wantFlags && len(ctx) != len(RecommendedFeatureFlags())+1) || (!tt.wantFlags && len(ctx) != 1) {
				t.Errorf("%s=%q: context has %d keys (minimizePolicies set: %v)", FeatureFlagsEnv, tt.env, len(ctx), has)
			}
		})
	}
	t.Run("typo", func(t *testing.T) {
		t.Setenv(FeatureFlagsEnv, "recomended")
		defer func() {
			if recover() == nil {
				t.Error("an unknown value must panic")
			}
		}()
		AppContext(nil)
	})
}
