package frame

import (
	"strings"
	"testing"
)

var benchEnvelopes = []struct {
	name string
	msg  []byte
}{
	{"signal", []byte(`{"type":"direct","id":17,"to":"peer-b7f3","data":{"type":"candidate","candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0","sdpMid":"0","sdpMLineIndex":0}}`)},
	{"base64_64k", []byte(`{"type":"publish","room":"doc/42","data":"` + strings.Repeat("QUJDREVGR0hJSktMTU5PUA==", 2730) + `"}`)},
	{"numbers_16k", []byte(`{"type":"publish","room":"doc/42","data":[` + strings.Repeat("12345,-6.5e3,0.25,", 900) + `1]}`)},
}

func BenchmarkScanEnvelope(b *testing.B) {
	for _, bm := range benchEnvelopes {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			var e Envelope
			for b.Loop() {
				if err := ScanEnvelope(bm.msg, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseClientHeader(b *testing.B) {
	msg := append(AppendClientHeader(nil, BinPublish, 1, 0, "doc/42"), strings.Repeat("p", 1024)...)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var h Header
	for b.Loop() {
		if _, err := ParseClientHeader(msg, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	data := benchEnvelopes[0].msg
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendPublish(nil, "doc/42", "peer-a1c9", data))))
	for b.Loop() {
		dst = AppendPublish(dst[:0], "doc/42", "peer-a1c9", data)
	}
}

// BenchmarkBufCycle is one fan-out's buffer work: take a Buf, encode a
// publish into it, frame it, share it with 8 recipients, release them all.
func BenchmarkBufCycle(b *testing.B) {
	data := benchEnvelopes[0].msg
	b.ReportAllocs()
	b.SetBytes(int64(len(AppendPublish(nil, "doc/42", "peer-a1c9", data))))
	for b.Loop() {
		buf := NewBuf(len(data) + 64)
		buf.B = AppendPublish(buf.B, "doc/42", "peer-a1c9", data)
		buf.Finish(1)
		buf.Retain(8)
		for range 9 {
			buf.Release()
		}
	}
}
