// Command sqsfake runs the in-memory SQS fake (package internal/sqsfake) until interrupted, for trying the redrive
// command's dlq mode locally:
//
//	go run ./internal/sqsfake/cmd/sqsfake --addr 127.0.0.1:9324 --queue dlq --send-file failures.jsonl
//
// It prints the queue's URL; point the SDK at it with AWS_ENDPOINT_URL_SQS=http://127.0.0.1:9324. --send-file sends
// each non-empty line of a file as a message (for example on-failure records, one JSON document per line).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9324", "address to listen on")
	queue := flag.String("queue", "dlq", "queue to create")
	sendFile := flag.String("send-file", "", "send each non-empty line of this file to the queue")
	flag.Parse()
	srv, err := sqsfake.Listen(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer srv.Close()
	url := srv.CreateQueue(*queue)
	if *sendFile != "" {
		f, err := os.Open(*sendFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				srv.Send(*queue, line)
				n++
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "sent %d messages\n", n)
	}
	fmt.Printf("endpoint %s\nqueue    %s\n", srv.URL(), url)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
