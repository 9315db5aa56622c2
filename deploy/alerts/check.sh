#!/usr/bin/env bash
# deploy/alerts/check.sh: the alerting rules, offline (`make alerts-check`, deploy/check.sh).
#
#   1. promtool check rules        pf-status-relay.rules.yaml is valid
#   2. promtool test rules         pf-status-relay.rules.test.yaml: each alert fires, and
#                                  does not, when it should
#   3. same groups                 prometheusrule.yaml's spec is the rules file's groups
#
# promtool comes from Debian's `prometheus` package (the only packaged promtool); it is
# installed with apt-get when missing and this runs as root (CI: Debian 12), with services
# kept from starting. PROMTOOL=/path/to/promtool uses another one.
set -uo pipefail
cd "$(dirname "$0")" || exit 2
PYTHON=${PYTHON:-python3}

if [ -z "${PROMTOOL:-}" ]; then
    if ! command -v promtool >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "alerts/check.sh: promtool missing; install Debian's prometheus package or set PROMTOOL" >&2
            exit 2
        fi
        echo "installing promtool (apt-get install prometheus) ..."
        # The package's service must not start here (a container, a CI runner).
        policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            policy=/usr/sbin/policy-rc.d
        fi
        { apt-get update -q >/dev/null 2>&1 || true; } \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                prometheus >/tmp/pfrelay-promtool-apt.log 2>&1
        rc=$?
        [ -n "$policy" ] && rm -f "$policy"
        if [ "$rc" != 0 ]; then
            tail -20 /tmp/pfrelay-promtool-apt.log >&2
            echo "alerts/check.sh: cannot install the prometheus package" >&2
            exit 2
        fi
    fi
    PROMTOOL=$(command -v promtool)
fi
echo "$("$PROMTOOL" --version 2>&1 | head -1)"

failed=0
"$PROMTOOL" check rules pf-status-relay.rules.yaml || failed=1
"$PROMTOOL" test rules pf-status-relay.rules.test.yaml || failed=1
if "$PYTHON" - <<'PY'
import sys
import yaml

rules = yaml.safe_load(open("pf-status-relay.rules.yaml", encoding="utf-8"))
docs = [d for d in yaml.safe_load_all(open("prometheusrule.yaml", encoding="utf-8")) if d]
if len(docs) != 1 or docs[0].get("kind") != "PrometheusRule":
    sys.exit("prometheusrule.yaml: want exactly one PrometheusRule")
if docs[0]["spec"] != rules:
    sys.exit("prometheusrule.yaml: spec differs from pf-status-relay.rules.yaml; copy the groups")
alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
tests = open("pf-status-relay.rules.test.yaml", encoding="utf-8").read()
untested = [a for a in alerts if f"alertname: {a}\n" not in tests]
if untested:
    sys.exit(f"alerts without a promtool test: {untested}")
print(f"ok: prometheusrule.yaml has the same {len(alerts)} alerts; each has a test")
PY
then :; else failed=1; fi
exit "$failed"
