package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// Limits of a configuration read from S3.
const (
	maxAssetSize  = 256 << 20 // a Lambda code zip (the function's asset): 250 MB unzipped at most
	maxConfigSize = 4 << 20   // the configuration file itself
)

// configFromS3 reads the pipeline's configuration from s3://BUCKET/KEY: the object itself, or, for a key ending in
// ".zip", the processor.ConfigFileName inside it. The construct's stack outputs name the function's code asset (a
// zip in the CDK assets bucket, holding bootstrap and pipeline.json): the configuration the function runs with,
// whatever its size, and as trusted as the function's code.
func configFromS3(ctx context.Context, client redrive.S3, uri string) (processor.Config, error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(uri, "s3://"), "/")
	if !ok || bucket == "" || key == "" {
		return processor.Config{}, errors.New("want s3://BUCKET/KEY")
	}
	if client == nil {
		return processor.Config{}, errors.New("no S3 client")
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return processor.Config{}, fmt.Errorf("get object: %w", err)
	}
	defer out.Body.Close()
	limit := int64(maxConfigSize)
	if strings.HasSuffix(key, ".zip") {
		limit = maxAssetSize
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return processor.Config{}, fmt.Errorf("read object: %w", err)
	}
	if int64(len(b)) > limit {
		return processor.Config{}, fmt.Errorf("the object is larger than %d bytes", limit)
	}
	if strings.HasSuffix(key, ".zip") {
		if b, err = fileInZip(b, processor.ConfigFileName); err != nil {
			return processor.Config{}, err
		}
	}
	cfg, err := processor.ParseConfig(b)
	if err != nil {
		return processor.Config{}, fmt.Errorf("%s: %w", processor.ConfigFileName, err)
	}
	return cfg, nil
}

// fileInZip returns the content of the file named name at the root of the zip archive b.
func fileInZip(b []byte, name string) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("read the code asset: %w", err)
	}
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("open %s in the code asset: %w", name, err)
		}
		defer rc.Close()
		content, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
		if err != nil {
			return nil, fmt.Errorf("read %s in the code asset: %w", name, err)
		}
		if len(content) > maxConfigSize {
			return nil, fmt.Errorf("%s in the code asset is larger than %d bytes", name, maxConfigSize)
		}
		return content, nil
	}
	return nil, fmt.Errorf("the code asset holds no %s (a pipeline with the default configuration needs no --config)", name)
}
