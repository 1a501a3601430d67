#!/usr/bin/env bash
# Checks the deployment files with the real tools: systemd-analyze (unit),
# promtool (alert rules, their unit tests, the dashboard's queries) and the
# running kernel (sysctl keys), and the Kubernetes manifests against the
# Kubernetes API schemas. Usage: deploy/check.sh [path/to/wsrelay]
# Needs systemd-analyze and promtool (Debian: systemd, prometheus), Node.js
# and deploy/node_modules (npm ci in deploy/; make check-deploy runs it).
set -euo pipefail
here=$(dirname "$0")
bin=$(realpath "${1:-$here/../bin/wsrelay}")
cd "$here"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

echo "== systemd-analyze verify wsrelay.service"
# verify wants ExecStart to exist; point it at the built binary. It exits 0
# on most problems and only prints them, so any output is a failure.
sed "s#^ExecStart=/usr/local/bin/wsrelay#ExecStart=$bin#" wsrelay.service >"$tmp/wsrelay.service"
out=$(systemd-analyze verify "$tmp/wsrelay.service" 2>&1 || true)
if [ -n "$out" ]; then echo "$out"; fail=1; else echo "  ok"; fi
echo "== systemd-analyze security (exposure; lower is better)"
systemd-analyze security --offline=yes "$tmp/wsrelay.service" 2>&1 | tail -1

echo "== promtool check rules prometheus-rules.yml"
promtool check rules prometheus-rules.yml || fail=1
echo "== promtool test rules prometheus-rules.test.yml"
promtool test rules prometheus-rules.test.yml || fail=1

echo "== grafana-dashboard.json queries"
# Each panel query, with the dashboard variables filled in, must parse as
# PromQL: wrap them as recording rules and let promtool parse them.
node -e '
  const d = JSON.parse(require("fs").readFileSync("grafana-dashboard.json", "utf8"));
  const exprs = d.panels.flatMap((p) => p.targets.map((t) => t.expr));
  const rules = exprs.map((e, i) => `      - record: dashboard:q${i}\n        expr: ${JSON.stringify(e.replaceAll("$__rate_interval", "5m").replaceAll("$job", "wsrelay").replaceAll("$instance", ".*"))}`);
  process.stdout.write("groups:\n  - name: dashboard\n    rules:\n" + rules.join("\n") + "\n");
' >"$tmp/dashboard-rules.yml"
promtool check rules "$tmp/dashboard-rules.yml" || fail=1

echo "== sysctl.conf keys exist in this kernel"
while IFS= read -r line; do
	case "$line" in '' | '#'*) continue ;; esac
	key=${line%%=*}
	key=${key// /}
	optional=0
	if [ "${key#-}" != "$key" ]; then optional=1; key=${key#-}; fi
	if [ -e "/proc/sys/${key//.//}" ]; then
		echo "  $key"
	elif [ "$optional" = 1 ]; then
		echo "  $key (optional, not in this kernel)"
	else
		echo "  $key: MISSING"; fail=1
	fi
done <sysctl.conf

echo "== sysctl.conf reserves the ports wsrelay and NATS listen on"
# ip_local_port_range covers the listen ports: each must be reserved, or an
# outgoing connection can take it at boot.
reserved=$(sed -n 's/^net\.ipv4\.ip_local_reserved_ports *= *//p' sysctl.conf)
listen_port=$(sed -n 's/^WSRELAY_ADDR=.*:\([0-9][0-9]*\)$/\1/p' wsrelay.env)
for port in "$listen_port" 4222; do
	if [[ ",$reserved," == *",$port,"* ]]; then
		echo "  $port reserved"
	else
		echo "  $port: in ip_local_port_range but not in ip_local_reserved_ports ($reserved)"; fail=1
	fi
done

echo "== kubernetes/ against the Kubernetes API schemas"
node check-kubernetes.mjs "$bin" || fail=1

exit $fail
