#!/usr/bin/env bash
# The main job, end to end: a throwaway key set and secret in a temp dir, a software TPM 2.0
# (swtpm) holding the secret sealed, the real agent on a Unix socket, tokens minted by
# independent JOSE libraries (PyJWT, jwcrypto), and the CLI asking the agent about them.
# Usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
agent=$build/net/license-agent
cli=$build/cli/license-agent-cli
mint=(/usr/bin/python3 "$root/tests/support/mint.py")

work=$(mktemp -d /tmp/license-agent-demo.XXXXXX)
agent_pid=
swtpm_pid=
cleanup() {
  [[ -n $agent_pid ]] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [[ -n $swtpm_pid ]] && kill -TERM "$swtpm_pid" 2>/dev/null && wait "$swtpm_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. A throwaway signing key set and secret (kid/version 1) in $work"
"${mint[@]}" keys --out "$work/keys" --signing-kids k1 --secret-versions 1
ls -l "$work/keys"

cat > "$work/config.toml" <<TOML
[agent]
id = "pos-demo-001"
state_dir = "$work/state"
[ipc]
socket = "$work/agent.sock"
admin_socket = "$work/admin.sock"
socket_mode = "0660"
allowed_uids = [$(id -u)]
admin_uids = [$(id -u)]
[licenses]
issuer = "https://licenses.example.com"
signing_keys = "$work/keys/signing-keys.json"
leeway_seconds = 60
instance = "pos-demo-001-fingerprint"
[secrets]
backend = "tpm"
[tpm]
tcti = "swtpm:path=$work/tpm/swtpm.sock"
primary_handle = "0x81010001"
nv_index = "0x01500020"
timeout_ms = 1500
TOML
chmod 600 "$work/config.toml"

say "2. A software TPM 2.0 (swtpm) on a Unix socket; provision it (idempotent: run twice)"
mkdir -p "$work/tpm"
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --flags not-need-init,startup-clear \
  --server type=unixio,path="$work/tpm/swtpm.sock" --ctrl type=unixio,path="$work/tpm/swtpm.sock.ctrl" \
  --log file="$work/tpm/swtpm.log" &
swtpm_pid=$!
for _ in $(seq 100); do [[ -S $work/tpm/swtpm.sock ]] && break; sleep 0.05; done
"$cli" --config "$work/config.toml" tpm-provision
"$cli" --config "$work/config.toml" tpm-provision

say "3. Seal secret version 1 into the TPM, then delete the plain copy"
"$cli" --config "$work/config.toml" secrets import "$work/keys/secrets.json"
cp "$work/keys/secrets.json" "$work/secrets-for-minting.json"  # the demo's token minter needs it
rm "$work/keys/secrets.json"
ls -l "$work/state"

say "4. Start license-agent (it unseals the secret on its TPM thread)"
"$agent" --config "$work/config.toml" 2> "$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do [[ -S $work/agent.sock ]] && break; sleep 0.05; done
cat "$work/agent.log"

now=$(date +%s)
claims=$(printf '{"jti":"LIC-2026-0001","iss":"https://licenses.example.com","sub":"customer-42","product":"pos-suite","lic_type":"subscription","iat":%d,"exp":%d,"features":["sales","inventory","loyalty"],"versions":["17.0"],"meta":{"seats":"3","tier":"gold"}}' "$now" $((now + 30 * 86400)))

say "5. A signed license (JWS EdDSA, minted by PyJWT)"
signed=$("${mint[@]}" sign --keys "$work/keys" --kid k1 --claims "$claims")
echo "${signed:0:72}..."
"$cli" --socket "$work/agent.sock" validate --product pos-suite --feature loyalty "$signed"

say "6. A sealed token (JWE dir+A256GCM under the TPM-held secret, minted by jwcrypto), as JSON"
cp "$work/secrets-for-minting.json" "$work/keys/secrets.json"
sealed=$("${mint[@]}" seal --keys "$work/keys" --kid 1 --claims "$claims")
rm "$work/keys/secrets.json" "$work/secrets-for-minting.json"
echo "${sealed:0:72}..."
echo "$sealed" | "$cli" --socket "$work/agent.sock" validate --json -

say "7. The same signed license with one payload character changed: refused"
tampered=$("${mint[@]}" sign --keys "$work/keys" --kid k1 --claims "$claims" --tamper payload)
if "$cli" --socket "$work/agent.sock" validate "$tampered"; then
  echo "UNEXPECTED: tampered token accepted"; exit 1
else
  echo "(exit code $?: refused as expected)"
fi

say "8. A feature the license does not grant: refused"
"$cli" --socket "$work/agent.sock" validate --feature payroll "$signed" || echo "(exit code $?: refused as expected)"

say "9. Agent status and custody over the admin socket"
"$cli" --socket "$work/admin.sock" status
"$cli" --config "$work/config.toml" tpm-status

say "10. The TPM stops answering (SIGSTOP): validations continue from memory, the TPM is reported"
kill -STOP "$swtpm_pid"
echo "$sealed" | "$cli" --socket "$work/agent.sock" validate -
"$cli" --config "$work/config.toml" --timeout-ms 20000 tpm-status --json | head -c 400; echo
kill -CONT "$swtpm_pid"

say "11. SIGTERM: graceful stop"
kill -TERM "$agent_pid"
wait "$agent_pid" && echo "agent exited with status 0"
agent_pid=
tail -n 2 "$work/agent.log"
