package cluster

import (
	"strings"
	"testing"
)

// TestHAProxyText: the balancer checks /readyz as the readiness probe
// does, and retries (with redispatch) only when asked.
func TestHAProxyText(t *testing.T) {
	cfg := HAProxyConfig{Backends: []string{"127.0.0.1:1", "127.0.0.1:2"}}
	text := HAProxyText("127.0.0.1:80", "127.0.0.1:81", cfg)
	for _, want := range []string{"option httpchk GET /readyz", "server r0 127.0.0.1:1 check inter 500ms fall 1 rise 2", "server r1 127.0.0.1:2 check", "retries 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "redispatch") {
		t.Errorf("redispatch without retries:\n%s", text)
	}
	cfg.Retries = 2
	if text := HAProxyText("127.0.0.1:80", "127.0.0.1:81", cfg); !strings.Contains(text, "retries 2") || !strings.Contains(text, "option redispatch 1") {
		t.Errorf("retries 2:\n%s", text)
	}
}

// TestParseServers reads the servers of backend "replicas" from
// haproxy's CSV statistics, skipping the frontend and backend rows.
func TestParseServers(t *testing.T) {
	const csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,\n" +
		"api,FRONTEND,,,3,9,262124,120,0,0,0,0,0,,,,,OPEN,\n" +
		"replicas,r0,0,0,2,5,,40,0,0,,0,,0,0,0,0,UP,\n" +
		"replicas,r1,0,0,0,5,,38,0,0,,0,,0,0,0,0,DOWN,\n" +
		"replicas,BACKEND,0,0,2,9,,78,0,0,0,0,,0,0,0,0,UP,\n"
	got := parseServers(csv)
	if len(got) != 2 || got["r0"] != (Server{Status: "UP", Current: 2, Total: 40}) || got["r1"] != (Server{Status: "DOWN", Total: 38}) {
		t.Fatalf("got %+v", got)
	}
}
