#!/usr/bin/env bash
# `ray up` for real on one machine: sshd on 127.0.0.2 (head) and 127.0.0.3 (worker), a local-provider
# cluster, a small search submitted with `ray exec` (its --storage-path checked from both nodes),
# trials checked on both nodes (node_id in STORE/trials/*/result.json), then `ray down`.
# Not part of pytest (slow, needs root for sshd and apt): run it yourself from the repo root with
#   bash tests/integration/ray_up_local.sh            (DATA=... TRIALS=... override the defaults)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
DATA=${DATA:-/work/shared/data/hotdog}
TRIALS=${TRIALS:-4}
HEAD_IP=127.0.0.2 WORKER_IP=127.0.0.3
PORT=6390  # not Ray's default 6379: another Ray may already run on this machine
WORK=$(mktemp -d /tmp/rayup.XXXXXX)
NAME=search-rayup-$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')
USER_NAME=$(id -un)
# v2 did not launch local-provider workers here (Ray 2.60); token auth must be the same everywhere
export RAY_UP_enable_autoscaler_v2=0 RAY_enable_autoscaler_v2=0 RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0

[ "$(id -u)" = 0 ] || { echo "run as root: it starts an sshd on port 22 of 127.0.0.2/3" >&2; exit 2; }
[ -x /usr/sbin/sshd ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server rsync >/dev/null
command -v rsync >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null
mkdir -p /run/sshd "$WORK/home" "$WORK/bin" "$WORK/out"

cleanup() {
    set +e
    [ -f "$WORK/cluster.yaml" ] && "$VENV/bin/ray" down -y "$WORK/cluster.yaml" >"$WORK/down.log" 2>&1
    "$WORK/bin/ray" stop  # whatever of this cluster survived `ray down`
    rm -f /tmp/ray/cluster-"$NAME".*  # the local provider's node state
    [ -f "$WORK/sshd.pid" ] && kill "$(cat "$WORK/sshd.pid")"  # only the sshd this script started
    echo "logs and results kept in $WORK"
}
trap cleanup EXIT

# `ray down` runs a bare `ray stop` on every node, which stops every Ray on the machine, other
# people's too. The ssh sessions find this `ray` first: `stop` ends only processes of this cluster
# (their command lines name its temp dir); everything else goes to the real ray.
cat >"$WORK/bin/ray" <<EOF
#!/usr/bin/env bash
if [ "\${1:-}" = stop ]; then
    pids=\$(pgrep -f -- "$WORK/ray" || true)
    [ -n "\$pids" ] && kill \$pids && sleep 3 && kill -9 \$(pgrep -f -- "$WORK/ray") 2>/dev/null
    exit 0
fi
exec "$VENV/bin/ray" "\$@"
EOF
# Ray's ssh to the worker passes `-i ~/ray_bootstrap_key.pem`, and ssh expands ~ to the passwd home
# (/root), not to the $HOME the sessions get below, where `ray up` put that key.
cat >"$WORK/bin/ssh" <<EOF
#!/bin/sh
exec /usr/bin/ssh -i "\$HOME/ray_bootstrap_key.pem" "\$@"
EOF
chmod +x "$WORK/bin/ray" "$WORK/bin/ssh"

# sshd of our own: own host key, key login for this user, and a HOME of our own for the ssh
# sessions, so Ray's bootstrap files and the ~/.bashrc that sets PATH stay inside $WORK.
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/id_ed25519"
cp "$WORK/id_ed25519.pub" "$WORK/authorized_keys"
cat >"$WORK/home/.bashrc" <<EOF
export PATH="$WORK/bin:$VENV/bin:\$PATH"  # Ray's ssh runs a login shell: /etc/profile resets PATH first
export RAY_ADDRESS=$HEAD_IP:$PORT  # --address auto must find this cluster, not another on the machine
EOF
cat >"$WORK/sshd_config" <<EOF
ListenAddress $HEAD_IP:22
ListenAddress $WORKER_IP:22
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv HOME=$WORK/home RAY_AUTH_MODE=disabled RAY_enable_autoscaler_v2=0 RAY_USAGE_STATS_ENABLED=0
EOF
/usr/sbin/sshd -f "$WORK/sshd_config" -E "$WORK/sshd.log"
for ip in $HEAD_IP $WORKER_IP; do
    ssh -q -i "$WORK/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "$USER_NAME@$ip" true
done

# Head and worker share this host, so each gets its own node IP and ports, and neither runs `ray stop`.
agent_ports() { echo "--dashboard-agent-listen-port=$1 --dashboard-agent-grpc-port=$(($1 + 1)) --runtime-env-agent-port=$(($1 + 2)) --metrics-export-port=$(($1 + 3)) --node-manager-port=$(($1 + 4)) --object-manager-port=$(($1 + 5))"; }
cat >"$WORK/cluster.yaml" <<EOF
cluster_name: $NAME
provider: {type: local, head_ip: $HEAD_IP, worker_ips: [$WORKER_IP]}
auth: {ssh_user: $USER_NAME, ssh_private_key: $WORK/id_ed25519}
file_mounts: {}  # the project and its venv are already here
setup_commands: []
head_start_ray_commands:
  - $VENV/bin/ray start --head --node-ip-address=$HEAD_IP --port=$PORT --temp-dir=$WORK/ray --include-dashboard=false --num-cpus=1 $(agent_ports 52410) --autoscaling-config=~/ray_bootstrap_config.yaml
worker_start_ray_commands:
  - $VENV/bin/ray start --address=\$RAY_HEAD_IP:$PORT --node-ip-address=$WORKER_IP --temp-dir=$WORK/ray --num-cpus=1 $(agent_ports 52420)
EOF

started=$(date +%s)
"$VENV/bin/ray" up -y "$WORK/cluster.yaml" >"$WORK/up.log" 2>&1 || { tail -40 "$WORK/up.log"; exit 1; }
echo "ray up: $(($(date +%s) - started)) s"
for _ in $(seq 60); do  # the head's autoscaler starts the worker after `ray up` returns
    nodes=$("$VENV/bin/ray" exec "$WORK/cluster.yaml" "python -c 'import ray; ray.init(address=\"auto\"); print(\"NODES\", sum(n[\"Alive\"] for n in ray.nodes()))'" 2>/dev/null | grep -o "NODES [0-9]*" | cut -d' ' -f2 || true)
    [ "${nodes:-0}" -ge 2 ] && break
    sleep 5
done
echo "alive nodes: ${nodes:-0} after $(($(date +%s) - started)) s"
[ "${nodes:-0}" -ge 2 ] || { echo "the worker never joined" >&2; exit 1; }

started=$(date +%s)
"$VENV/bin/ray" exec "$WORK/cluster.yaml" "cd $REPO && python -m search hotdog --address auto --data $DATA \
    --trials $TRIALS --max-epochs 2 --max-concurrent 2 --output $WORK/out --storage-path $WORK/store --no-report" \
    2>&1 | tee "$WORK/search.log"
echo "search: $(($(date +%s) - started)) s"
"$VENV/bin/python" - "$WORK/store" "$TRIALS" <<'EOF'
import json, sys
from pathlib import Path
out, trials = Path(sys.argv[1]), int(sys.argv[2])
placed = {d.name: {json.loads(line)["node_id"] for line in (d / "result.json").read_text().splitlines() if line.strip()}
          for d in (out / "trials").iterdir() if (d / "result.json").is_file()}
nodes = set().union(*placed.values())
print(f"{len(placed)} trials on {len(nodes)} nodes: " + ", ".join(f"{t} -> {'/'.join(n[:8] for n in ids)}" for t, ids in placed.items()))
assert len(placed) == trials, placed
assert len(nodes) == 2, nodes
EOF
echo "ray up on one machine: OK"
