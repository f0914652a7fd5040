// Package e2e holds the pipeline's end-to-end tests (build tag e2e): kinesalite, dynalite behind the fault-injecting
// DynamoDB stand-in, the local event source mapping runner (internal/localrun), and the default processor either in
// process or as the real bootstrap under aws-lambda-rie. Everything listens on 127.0.0.1; a missing emulator fails
// the tests. Run them with `go test -tags e2e ./internal/e2e`.
package e2e
