package kinesispipeline

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// grantAggregateRecount adds to grant what the redrive and replay commands need on the aggregate table to recount
// the records they store (runtime/processor's Options.RecountAggregates): reading and conditionally writing its
// items (dynamodb:GetItem, dynamodb:PutItem), and the table's customer-managed key when it has one. Without
// Aggregates it returns grant as it is.
func (p *KinesisDynamoPipeline) grantAggregateRecount(grantee awsiam.IGrantable, grant awsiam.Grant) awsiam.Grant {
	if p.aggregateTable == nil {
		return grant
	}
	grant = grant.Combine(p.aggregateTable.Grant(grantee, jsii.String("dynamodb:GetItem"), jsii.String("dynamodb:PutItem")))
	if key := p.aggregateTable.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantEncryptDecrypt(grantee))
	}
	return grant
}
