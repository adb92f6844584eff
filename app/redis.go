package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

func init() { register("redis", Redis) }

// redisMaxLine bounds the reply line read: PONG, or an error of a sentence.
const redisMaxLine = 4096

// Redis sends PING and reads the reply:
//
//   - +PONG: Ready, State "PONG".
//   - -NOAUTH or -NOPERM: the server is up and wants a login (or this user
//     may not PING): Ready, State "auth required".
//   - -LOADING (the dataset is being loaded into memory) and -MASTERDOWN (a
//     replica whose master is down, told not to serve stale data): NotReady.
//   - -ERR max number of clients reached: TooManyConnections.
//   - Any other error: AppError.
//
// Detail quotes the server's words.
func Redis(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	start := time.Now()
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return Result{}, fmt.Errorf("send PING: %w", err)
	}
	br := bufio.NewReaderSize(conn, 512)
	if _, err := br.Peek(1); err != nil {
		return Result{}, fmt.Errorf("read the answer to PING: %w", err)
	}
	firstByte := time.Since(start)
	r, err := redisRead(br)
	r.FirstByte = firstByte
	return r, err
}

// redisRead reads the reply to PING and judges it.
func redisRead(br *bufio.Reader) (Result, error) {
	line, err := redisLine(br, true)
	var bad *badBytesError
	if errors.As(err, &bad) {
		return otherProtocol("Redis", bad.b), nil
	}
	if err != nil {
		return Result{}, err
	}
	switch line[0] {
	case '+':
		if s := string(line[1:]); s == "PONG" {
			return Result{Ready: true, State: "PONG"}, nil
		}
	case '$':
		// A bulk string: RESP3's PING in a subscribed connection, or a
		// proxy's. Its length line, then the string.
		if string(line) == "$4" {
			if s, err := redisLine(br, false); err == nil && string(s) == "PONG" {
				return Result{Ready: true, State: "PONG"}, nil
			}
		}
	case '-':
		return redisJudge(string(line[1:])), nil
	}
	return Result{Cause: AppError, State: "unexpected reply",
		Detail: "the server answered PING with " + Quote(line) + ", not PONG"}, nil
}

// redisLine reads one CRLF-ended line (without the CRLF), at most
// redisMaxLine bytes; a typed line's first byte is a RESP type.
func redisLine(br *bufio.Reader, typed bool) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > redisMaxLine {
			return nil, &badBytesError{b: line}
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, &badBytesError{b: line}
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' ||
		typed && (len(line) < 3 || bytes.IndexByte([]byte("+-:$*_,#!=(%~>|"), line[0]) < 0) {
		return nil, &badBytesError{b: line}
	}
	return line[:len(line)-2], nil
}

// redisJudge turns an error reply (its text without the '-') into a Result.
func redisJudge(msg string) Result {
	prefix, _, _ := strings.Cut(msg, " ")
	quoted := fmt.Sprintf("%q", "-"+msg)
	switch prefix {
	case "NOAUTH", "NOPERM":
		return Result{Ready: true, State: "auth required",
			Detail: "the server is up and wants a login before PING: " + quoted}
	case "LOADING":
		return Result{Cause: NotReady, State: "loading",
			Detail: "the server is loading its dataset into memory: " + quoted}
	case "MASTERDOWN":
		return Result{Cause: NotReady, State: "master down",
			Detail: "a replica whose master is down, set not to serve stale data: " + quoted}
	}
	if strings.Contains(msg, "max number of clients reached") {
		return Result{Cause: TooManyConnections, State: "too many clients",
			Detail: "the server is at its connection limit (maxclients): " + quoted}
	}
	return Result{Cause: AppError, State: "error", Detail: "the server answered PING with an error: " + quoted}
}
