package processor

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

func TestLambdaAWSConfig(t *testing.T) {
	env := func(t *testing.T, kv ...string) {
		for _, k := range []string{envRegion, envDefaultRegion, envAccessKeyID, envSecretAccessKey, envSessionToken,
			envAccountID, envEndpointDynamo, envEndpoint, envIgnoreEndpoints} {
			t.Setenv(k, "")
		}
		for i := 0; i < len(kv); i += 2 {
			t.Setenv(kv[i], kv[i+1])
		}
	}
	creds := []string{envAccessKeyID, "AKID", envSecretAccessKey, "SECRET", envSessionToken, "TOKEN"}
	tests := []struct {
		name         string
		env          []string
		wantRegion   string
		wantEndpoint string
		wantErr      string
	}{
		{name: "lambda", env: append([]string{envRegion, "eu-west-1"}, creds...), wantRegion: "eu-west-1"},
		{name: "default region", env: append([]string{envDefaultRegion, "us-east-2"}, creds...), wantRegion: "us-east-2"},
		{name: "dynamodb endpoint wins", env: append([]string{envRegion, "eu-west-1", envEndpoint, "http://all", envEndpointDynamo, "http://ddb"}, creds...), wantRegion: "eu-west-1", wantEndpoint: "http://ddb"},
		{name: "global endpoint", env: append([]string{envRegion, "eu-west-1", envEndpoint, "http://all"}, creds...), wantRegion: "eu-west-1", wantEndpoint: "http://all"},
		{name: "endpoints ignored", env: append([]string{envRegion, "eu-west-1", envEndpointDynamo, "http://ddb", envIgnoreEndpoints, "true"}, creds...), wantRegion: "eu-west-1"},
		{name: "nothing set", wantErr: "AWS_REGION is not set\nenvironment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env(t, tt.env...)
			cfg, endpoint, err := lambdaAWSConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Region != tt.wantRegion {
				t.Errorf("region %q, want %q", cfg.Region, tt.wantRegion)
			}
			c, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil || c.AccessKeyID != "AKID" || c.SecretAccessKey != "SECRET" || c.SessionToken != "TOKEN" {
				t.Errorf("credentials %+v, %v", c, err)
			}
			var o dynamodb.Options
			endpoint(&o)
			got := ""
			if o.BaseEndpoint != nil {
				got = *o.BaseEndpoint
			}
			if got != tt.wantEndpoint {
				t.Errorf("endpoint %q, want %q", got, tt.wantEndpoint)
			}
			// The client built from it has the endpoint.
			client := NewDynamoDBClient(cfg, endpoint)
			if o := client.Options(); (o.BaseEndpoint == nil) != (tt.wantEndpoint == "") {
				t.Errorf("client endpoint %v", o.BaseEndpoint)
			}
		})
	}
}
