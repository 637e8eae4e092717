package backends

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// This file is the streaming hot path: a Server-Sent Events reader and a
// scanner that pulls from one OpenAI-compatible chunk only what tokenwatt
// measures. Both avoid reflection and per-chunk allocation so that the
// client, not the server, is never the bottleneck (docs/performance.md).

// MaxStreamLine bounds, in bytes, one line of a streamed response: an SSE
// line or event (all its data lines together), an NDJSON line. Real
// chunks are a few hundred bytes; the bound only stops a server that
// never ends a line from taking more than about twice this much memory
// per request in flight. A longer line ends the request as a
// stream_error that names the limit (docs/definitions.md).
const MaxStreamLine = 1 << 20

// sseBufferSize is the bufio buffer size; lines longer than this are
// assembled in sseReader.long. Every stream in flight holds one, so it
// is sized for real chunks (a few hundred bytes, a few KiB with
// logprobs), not for the longest line.
const sseBufferSize = 4 << 10

// maxPooledBytes keeps a reader that once assembled a huge event from
// pinning that memory in the pool forever.
const maxPooledBytes = 1 << 20

// maxJSONDepth matches encoding/json's nesting limit, so the scanner
// accepts exactly what json.Valid accepts.
const maxJSONDepth = 10000

// errEventTooLong reports an SSE line or event over MaxStreamLine.
var errEventTooLong = fmt.Errorf("SSE event longer than %d MiB (the limit of one line or event)", MaxStreamLine>>20)

// errLineTooLong reports a line over readLine's limit.
var errLineTooLong = errors.New("line too long")

var utf8BOM = []byte("\xef\xbb\xbf")

// sseReader reads the events of a text/event-stream body. It implements
// the parts of the WHATWG event-stream format that OpenAI-compatible
// servers use: data fields (joined with "\n" when an event has several),
// the event type (so `event: error` is recognised), comments (ignored,
// but for tokenwatt's simulator's stamps, StampPrefix, the latest of which
// is kept for the next text-carrying chunk), id/retry fields (ignored),
// LF or CRLF line ends and a leading BOM. A bare CR is not treated as a
// line end.
type sseReader struct {
	br    *bufio.Reader
	data  []byte // data of the event being read; returned by next
	long  []byte // assembles a line longer than br's buffer
	start bool   // nothing read yet: a BOM may follow

	// The latest simulator stamp (a StampPrefix comment line) that no
	// text-carrying chunk has taken yet: stamped says there is one,
	// stampSent is its unix_ns, stampLate its timer_late_ns.
	stamped              bool
	stampSent, stampLate int64
}

func newSSEReader(src io.Reader, size int) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(src, size), start: true}
}

var sseReaders = sync.Pool{New: func() any { return newSSEReader(nil, sseBufferSize) }}

// getSSEReader returns a pooled reader over src; the bufio buffer and the
// event buffer are reused across requests.
func getSSEReader(src io.Reader) *sseReader {
	r := sseReaders.Get().(*sseReader)
	r.reset(src)
	return r
}

func putSSEReader(r *sseReader) {
	r.br.Reset(nil)
	if cap(r.data) > maxPooledBytes || cap(r.long) > maxPooledBytes {
		return
	}
	sseReaders.Put(r)
}

func (r *sseReader) reset(src io.Reader) {
	r.br.Reset(src)
	r.data = r.data[:0]
	r.long = r.long[:0]
	r.start = true
	r.stamped = false
}

// next returns the data of the next event that has a data field, and
// whether its event type was "error". The data is valid until the next
// call. At the end of the body it returns io.EOF; an event cut off by the
// end of the body (no blank line after it) is still returned first, since
// some servers omit the final blank line. Any other read error is
// returned as is, and the unfinished event is dropped.
func (r *sseReader) next() (data []byte, errorEvent bool, err error) {
	r.data = r.data[:0]
	hasData := false
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && hasData {
				return r.data, errorEvent, nil
			}
			return nil, false, err
		}
		if r.start {
			r.start = false
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(line) == 0 {
			if hasData {
				return r.data, errorEvent, nil
			}
			errorEvent = false
			continue
		}
		if line[0] == ':' {
			// A comment; tokenwatt's simulator stamps its writes in one.
			if len(line) > len(StampPrefix) && string(line[:len(StampPrefix)]) == StampPrefix {
				r.stamp(line[len(StampPrefix):])
			}
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if len(r.data)+len(value)+1 > MaxStreamLine {
				return nil, false, errEventTooLong
			}
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			hasData = true
		case "event":
			errorEvent = string(value) == "error"
		}
	}
}

// stamp keeps a stamp's "<unix_ns> <timer_late_ns>" as the latest one;
// a malformed one is ignored, like any other comment.
func (r *sseReader) stamp(b []byte) {
	sent, rest, ok := parseInt64(b)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return
	}
	late, rest, ok := parseInt64(rest[1:])
	if !ok || len(rest) != 0 {
		return
	}
	r.stamped, r.stampSent, r.stampLate = true, sent, late
}

// parseInt64 reads a decimal integer (an optional '-', then digits) that
// fits in an int64 from the start of b, without allocating, and returns
// what follows it.
func parseInt64(b []byte) (n int64, rest []byte, ok bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	i := 0
	var u uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if u > (1<<63)/10 {
			return 0, nil, false
		}
		u = u*10 + uint64(b[i]-'0')
		if u > 1<<63 {
			return 0, nil, false
		}
	}
	switch {
	case i == 0:
		return 0, nil, false
	case neg:
		return -int64(u), b[i:], true // -1<<63 included: -int64(1<<63) wraps to itself
	case u > 1<<63-1:
		return 0, nil, false
	}
	return int64(u), b[i:], true
}

// readLine returns the next line without its LF or CRLF. The final line
// of a body that does not end in a newline is returned before io.EOF.
func (r *sseReader) readLine() ([]byte, error) {
	line, err := readLine(r.br, &r.long, MaxStreamLine)
	if err == errLineTooLong {
		err = errEventTooLong
	}
	return line, err
}

// readLine returns the next line of br without its LF or CRLF, or
// errLineTooLong once the line, newline included, is known to exceed
// limit bytes: it never holds more than limit bytes of a line. A line
// longer than br's buffer is assembled in *long, which the line returned
// may alias until the next call. The final line of a body that does not
// end in a newline is returned before io.EOF.
func readLine(br *bufio.Reader, long *[]byte, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case len(line) > limit:
		return nil, errLineTooLong
	case err == nil:
		return trimEOL(line), nil
	case err == io.EOF && len(line) > 0:
		return trimEOL(line), nil
	case err != bufio.ErrBufferFull:
		return nil, err
	}
	buf := append((*long)[:0], line...)
	defer func() { *long = buf[:0] }()
	for {
		line, err = br.ReadSlice('\n')
		if len(buf)+len(line) > limit {
			return nil, errLineTooLong
		}
		buf = append(buf, line...)
		switch {
		case err == nil, err == io.EOF:
			return trimEOL(buf), nil
		case err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

// isDoneEvent reports whether data is the OpenAI end-of-stream marker.
func isDoneEvent(data []byte) bool {
	return string(bytes.TrimSpace(data)) == "[DONE]"
}

// chunk is what one OpenAI-compatible JSON payload (an SSE chunk, or a
// whole non-streaming response or error body) says about the measurement.
//
// Its meaning, for a payload that is a JSON object (anything else yields
// the zero chunk); where a key repeats, its last occurrence counts:
//   - text: some element of "choices" is an object whose "text" is a
//     non-empty string, or whose "delta" or "message" is an object with a
//     non-empty string "content", "reasoning_content" or "reasoning".
//   - usage: "usage" is an object. promptTokens and completionTokens are
//     its "prompt_tokens" and "completion_tokens" when those are plain
//     non-negative integer literals that fit in int64, else -1.
//   - isError: "error" is present and neither null nor false, or "object"
//     is the string "error" (vLLM's older error shape).
//   - errorMessage: the raw JSON string literal (quotes included) of
//     error.message, or of "error" itself when it is a string, or, for the
//     older shape without "error", of the top-level "message".
//   - finishReason: the raw string literal of "finish_reason" of the last
//     element of "choices" (an object) whose "finish_reason" is a string;
//     nil when none is.
//   - answer: the raw string literal of the first element of "choices"
//     (an object) that has answer text: its "text" when a non-empty
//     string, else its "delta"'s "content" when a non-empty string, else
//     its "message"'s; nil when none has. answerEscaped: it has escapes.
//     Reasoning text is not answer text.
type chunk struct {
	text             bool
	usage            bool
	promptTokens     int64
	completionTokens int64
	isError          bool
	errorMessage     []byte
	finishReason     []byte
	answer           []byte
	answerEscaped    bool
}

// answerText returns the chunk's answer text, decoded as encoding/json
// does (invalid UTF-8 becomes U+FFFD). Without escapes it is a slice of
// the payload, valid until the next chunk.
func (c *chunk) answerText() []byte {
	if len(c.answer) < 2 {
		return nil
	}
	raw := c.answer[1 : len(c.answer)-1]
	if !c.answerEscaped && utf8.Valid(raw) {
		return raw
	}
	var s string
	if json.Unmarshal(c.answer, &s) != nil {
		return nil
	}
	return []byte(s)
}

// finish decodes the finish reason; "" when there is none.
func (c *chunk) finish() string {
	if len(c.finishReason) < 2 {
		return ""
	}
	if bytes.IndexByte(c.finishReason, '\\') < 0 {
		// Cut before the copy: a hostile server's reason can be long.
		raw := c.finishReason[1 : len(c.finishReason)-1]
		// The reasons servers give are a handful of words: those come
		// back as constants, so a stream allocates nothing for its
		// finish reason (the compiler compares without converting).
		switch string(raw) {
		case "stop":
			return "stop"
		case "length":
			return "length"
		case "abort":
			return "abort"
		case "tool_calls":
			return "tool_calls"
		case "content_filter":
			return "content_filter"
		}
		return string(raw[:min(len(raw), MaxFinishReason+utf8.UTFMax)])
	}
	var s string
	if json.Unmarshal(c.finishReason, &s) != nil {
		return ""
	}
	return s
}

// message decodes the error message, or returns "" when there is none.
// It runs only on the error path, so it may allocate.
func (c *chunk) message() string {
	if c.errorMessage == nil {
		return ""
	}
	var s string
	if err := json.Unmarshal(c.errorMessage, &s); err != nil {
		return string(c.errorMessage)
	}
	return s
}

// jsonSyntaxError is a malformed payload, located by byte offset.
type jsonSyntaxError struct {
	offset int
	msg    string
}

func (e *jsonSyntaxError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.offset) + ": " + e.msg
}

// scanChunk fills c from the JSON payload b. It validates b as strictly
// as json.Valid and returns a *jsonSyntaxError where json.Valid would
// report false. It neither allocates (except on that error) nor uses
// reflection.
func scanChunk(b []byte, c *chunk) error {
	*c = chunk{promptTokens: -1, completionTokens: -1}
	s := jsonScanner{b: b}
	s.ws()
	ok := false
	if s.i < len(s.b) && s.b[s.i] == '{' {
		ok = s.topObject(c)
	} else {
		ok = s.skipValue()
	}
	if ok {
		s.ws()
		if s.i != len(s.b) {
			ok = s.fail("data after the top-level value")
		}
	}
	if !ok {
		*c = chunk{promptTokens: -1, completionTokens: -1}
		return &jsonSyntaxError{offset: s.errOff, msg: s.errMsg}
	}
	return nil
}

// jsonScanner is a validating recursive-descent JSON reader over one
// payload. Methods that read a value expect s.i at its first byte and
// leave s.i just after it; they return false after recording the first
// syntax error.
type jsonScanner struct {
	b      []byte
	i      int
	depth  int
	errOff int
	errMsg string
	keyBuf [24]byte // unescaped object keys, when a key has escapes
}

func (s *jsonScanner) fail(msg string) bool {
	if s.errMsg == "" {
		s.errOff, s.errMsg = s.i, msg
	}
	return false
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// open consumes '{' or '[' and enforces the nesting limit.
func (s *jsonScanner) open() bool {
	s.i++
	s.depth++
	if s.depth > maxJSONDepth {
		return s.fail("nesting too deep")
	}
	return true
}

// member moves to the next member of the object being read. first is
// true right after '{'. At '}' it returns more == false. Otherwise it
// returns the member's key (unescaped when it has escapes; a key that
// cannot be one tokenwatt looks for comes back empty) and leaves s.i at
// the member's value.
func (s *jsonScanner) member(first bool) (key []byte, more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, s.fail("unexpected end of data in object")
	}
	c := s.b[s.i]
	if c == '}' {
		s.i++
		s.depth--
		return nil, false, true
	}
	if !first {
		if c != ',' {
			return nil, false, s.fail("expected ',' or '}' in object")
		}
		s.i++
		s.ws()
		if s.i >= len(s.b) {
			return nil, false, s.fail("unexpected end of data in object")
		}
		c = s.b[s.i]
	}
	if c != '"' {
		return nil, false, s.fail("expected a string key in object")
	}
	raw, escaped, ok := s.str()
	if !ok {
		return nil, false, false
	}
	key = raw
	if escaped {
		key = s.unescapeKey(raw)
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, false, s.fail("expected ':' after object key")
	}
	s.i++
	s.ws()
	return key, true, true
}

// element moves to the next element of the array being read. first is
// true right after '['. At ']' it returns more == false; otherwise s.i is
// left at the element.
func (s *jsonScanner) element(first bool) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.fail("unexpected end of data in array")
	}
	c := s.b[s.i]
	if c == ']' {
		s.i++
		s.depth--
		return false, true
	}
	if !first {
		if c != ',' {
			return false, s.fail("expected ',' or ']' in array")
		}
		s.i++
		s.ws()
	}
	return true, true
}

// unescapeKey decodes an escaped key into s.keyBuf. Keys tokenwatt looks
// for are short and ASCII, so a key that decodes to anything longer or
// non-ASCII is returned empty, which matches none of them.
func (s *jsonScanner) unescapeKey(raw []byte) []byte {
	n := 0
	for i := 0; i < len(raw); i++ {
		if n == len(s.keyBuf) {
			return nil
		}
		c := raw[i]
		if c >= 0x80 {
			return nil
		}
		if c != '\\' {
			s.keyBuf[n] = c
			n++
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r := hex4(raw[i+1 : i+5])
			if r >= 0x80 {
				return nil
			}
			c = byte(r)
			i += 4
		default: // '"', '\\', '/'
			c = raw[i]
		}
		s.keyBuf[n] = c
		n++
	}
	return s.keyBuf[:n]
}

// hex4 decodes four hex digits that str has already validated.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// str reads a string and returns its raw content between the quotes and
// whether it contains escapes. The raw content is empty exactly when the
// decoded string is, which is all the text checks need.
func (s *jsonScanner) str() (raw []byte, escaped, ok bool) {
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, s.fail("unexpected end of data in string escape")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return nil, false, s.fail("invalid \\u escape in string")
					}
					s.i++
				}
			default:
				return nil, false, s.fail("invalid escape in string")
			}
		case c < 0x20:
			return nil, false, s.fail("control character in string")
		default:
			s.i++
		}
	}
	return nil, false, s.fail("unexpected end of data in string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number reads a number with JSON's grammar and returns its literal.
func (s *jsonScanner) number() ([]byte, bool) {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(s.b):
		return nil, s.fail("unexpected end of data in number")
	case s.b[s.i] == '0':
		s.i++
	case s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, s.fail("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, s.fail("invalid number: no digits after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, s.fail("invalid number: no digits in exponent")
		}
	}
	return s.b[start:s.i], true
}

func (s *jsonScanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// literal reads true, false or null.
func (s *jsonScanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.fail("invalid literal, expected " + word)
	}
	s.i += len(word)
	return true
}

// skipValue reads and validates any value.
func (s *jsonScanner) skipValue() bool {
	if s.i >= len(s.b) {
		return s.fail("unexpected end of data, expected a value")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if !s.open() {
			return false
		}
		for first := true; ; first = false {
			_, more, ok := s.member(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !s.skipValue() {
				return false
			}
		}
	case c == '[':
		if !s.open() {
			return false
		}
		for first := true; ; first = false {
			more, ok := s.element(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !s.skipValue() {
				return false
			}
		}
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		_, ok := s.number()
		return ok
	default:
		return s.fail("invalid character, expected a value")
	}
}

// nonEmptyString reads any value and reports whether it is a non-empty
// string.
func (s *jsonScanner) nonEmptyString() (nonEmpty, ok bool) {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		raw, _, ok := s.str()
		return len(raw) > 0, ok
	}
	return false, s.skipValue()
}

// answerString reads any value and, when it is a non-empty string,
// returns its literal with the quotes and whether it has escapes.
func (s *jsonScanner) answerString() (lit []byte, escaped, ok bool) {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		start := s.i
		raw, escaped, ok := s.str()
		if !ok || len(raw) == 0 {
			return nil, false, ok
		}
		return s.b[start:s.i], escaped, true
	}
	return nil, false, s.skipValue()
}

// stringLiteral reads any value and, when it is a string, returns its
// literal with the quotes.
func (s *jsonScanner) stringLiteral() (lit []byte, ok bool) {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		start := s.i
		if _, _, ok := s.str(); !ok {
			return nil, false
		}
		return s.b[start:s.i], true
	}
	return nil, s.skipValue()
}

// count reads any value and returns it as a token count: a plain
// non-negative integer literal that fits in int64, else -1.
func (s *jsonScanner) count() (int64, bool) {
	if s.i >= len(s.b) || s.b[s.i] < '0' || s.b[s.i] > '9' {
		return -1, s.skipValue()
	}
	lit, ok := s.number()
	if !ok {
		return -1, false
	}
	var n int64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return -1, true
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return -1, true
		}
		n = n*10 + d
	}
	return n, true
}

// topObject reads the payload's top-level object (s.i at '{').
func (s *jsonScanner) topObject(c *chunk) bool {
	if !s.open() {
		return false
	}
	var (
		errorSet, objectIsError bool
		errorMsg, topMsg        []byte
	)
	for first := true; ; first = false {
		key, more, ok := s.member(first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch string(key) {
		case "choices":
			ok = s.choices(c)
		case "usage":
			ok = s.usage(c)
		case "error":
			ok = s.errorValue(&errorSet, &errorMsg)
		case "object":
			var lit []byte
			lit, ok = s.stringLiteral()
			objectIsError = string(lit) == `"error"`
		case "message":
			topMsg, ok = s.stringLiteral()
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
	switch {
	case errorSet:
		c.isError, c.errorMessage = true, errorMsg
	case objectIsError:
		c.isError, c.errorMessage = true, topMsg
	}
	return true
}

// choices reads the "choices" value into c's text, finishReason and
// answer.
func (s *jsonScanner) choices(c *chunk) bool {
	c.text, c.finishReason, c.answer, c.answerEscaped = false, nil, nil, false
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return s.skipValue()
	}
	if !s.open() {
		return false
	}
	for first := true; ; first = false {
		more, ok := s.element(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		if s.i >= len(s.b) || s.b[s.i] != '{' {
			if !s.skipValue() {
				return false
			}
			continue
		}
		var ch choiceInfo
		if !s.choice(&ch) {
			return false
		}
		c.text = c.text || ch.text
		if ch.finish != nil {
			c.finishReason = ch.finish
		}
		if c.answer == nil && ch.answer != nil {
			c.answer, c.answerEscaped = ch.answer, ch.answerEscaped
		}
	}
}

// choiceInfo is what one element of "choices" says.
type choiceInfo struct {
	text          bool   // carries generated or reasoning text
	finish        []byte // finish_reason's literal, when a string
	answer        []byte // answer text's literal (see chunk)
	answerEscaped bool
}

// choice reads one element of "choices" (s.i at '{').
func (s *jsonScanner) choice(ch *choiceInfo) bool {
	if !s.open() {
		return false
	}
	var (
		delta, message     bool
		plain, deltaAnswer []byte
		messageAnswer      []byte
		plainEsc, deltaEsc bool
		messageEsc         bool
	)
	for first := true; ; first = false {
		key, more, ok := s.member(first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch string(key) {
		case "delta":
			ok = s.delta(&delta, &deltaAnswer, &deltaEsc)
		case "message":
			ok = s.delta(&message, &messageAnswer, &messageEsc)
		case "text":
			plain, plainEsc, ok = s.answerString()
		case "finish_reason":
			ch.finish, ok = s.stringLiteral()
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
	ch.text = delta || message || plain != nil
	switch {
	case plain != nil:
		ch.answer, ch.answerEscaped = plain, plainEsc
	case deltaAnswer != nil:
		ch.answer, ch.answerEscaped = deltaAnswer, deltaEsc
	case messageAnswer != nil:
		ch.answer, ch.answerEscaped = messageAnswer, messageEsc
	}
	return true
}

// delta reads a choice's "delta" (streaming) or "message" (non-streaming)
// value; text is whether it carries generated or reasoning text, answer
// the literal of its non-empty "content" (nil: none).
func (s *jsonScanner) delta(text *bool, answer *[]byte, escaped *bool) bool {
	*text, *answer, *escaped = false, nil, false
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skipValue()
	}
	if !s.open() {
		return false
	}
	var reasoningContent, reasoning bool
	for first := true; ; first = false {
		key, more, ok := s.member(first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch string(key) {
		case "content":
			*answer, *escaped, ok = s.answerString()
		case "reasoning_content":
			reasoningContent, ok = s.nonEmptyString()
		case "reasoning":
			reasoning, ok = s.nonEmptyString()
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
	*text = *answer != nil || reasoningContent || reasoning
	return true
}

// usage reads the "usage" value into c.
func (s *jsonScanner) usage(c *chunk) bool {
	c.usage, c.promptTokens, c.completionTokens = false, -1, -1
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skipValue()
	}
	if !s.open() {
		return false
	}
	c.usage = true
	for first := true; ; first = false {
		key, more, ok := s.member(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		switch string(key) {
		case "prompt_tokens":
			c.promptTokens, ok = s.count()
		case "completion_tokens":
			c.completionTokens, ok = s.count()
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
}

// errorValue reads the "error" value: set is whether it signals an error
// (anything but null or false), msg its message literal if it has one.
func (s *jsonScanner) errorValue(set *bool, msg *[]byte) bool {
	*set, *msg = false, nil
	if s.i >= len(s.b) {
		return s.skipValue()
	}
	switch s.b[s.i] {
	case 'n':
		return s.literal("null")
	case 'f':
		return s.literal("false")
	case '"':
		*set = true
		lit, ok := s.stringLiteral()
		*msg = lit
		return ok
	case '{':
	default:
		*set = true
		return s.skipValue()
	}
	*set = true
	if !s.open() {
		return false
	}
	for first := true; ; first = false {
		key, more, ok := s.member(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		if string(key) == "message" {
			*msg, ok = s.stringLiteral()
		} else {
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
}
