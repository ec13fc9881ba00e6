#!/usr/bin/env bash
# Builds Triton's model repository for MobileNetV4-Conv-Small and copies it onto the
# `triton-models` PVC that the Triton Deployment mounts at /models:
#
#   <repo>/mobilenetv4/config.pbtxt   from the triton-config ConfigMap (scripts/k8s/base)
#   <repo>/mobilenetv4/1/model.onnx   input0 FP32 [N,3,224,224] -> output0 FP32 [N,1000]
#
# Usage: scripts/k8s/model-repository.sh [options]
#   --source=MODE     where model.onnx comes from:
#                       auto  (default) hub, and the local export if the hub fails
#                       hub   timm's pretrained mobilenetv4_conv_small.e2400_r224_in1k from the
#                             Hugging Face hub, exported to ONNX here (needs timm, torch, onnx
#                             and network access)
#                       local python scripts/export_mobilenetv4.py --out DIR --repo (the
#                             repository's own export: random weights, no download; the
#                             serving cost is the same, the predictions are not)
#   --onnx=FILE       use this ONNX file as model.onnx instead (tensor names input0/output0)
#   --out=DIR         build the repository in DIR (default: a temporary directory)
#   --copy=MODE       how it reaches the PVC:
#                       pod      (default) a short-lived helper pod mounts the PVC and
#                                `kubectl cp` copies the files in; works on any cluster
#                       hostpath copy straight into the PVC's directory on this machine
#                                (MicroK8s hostpath-storage; needs sudo and a bound PVC)
#                       none     only build it in --out
#   --namespace=NS    the testbed's namespace (default k8s-gpu-rl)
#   --restart         restart the Triton Deployment afterwards so it loads the new model
#   --dry-run         print what would be done; runs nothing
#   -h, --help        this text
# Environment: PYTHON (default python3), KUBECTL (default kubectl, else `microk8s kubectl`).
#
# Apply scripts/k8s/base first: it creates the namespace and the PVC.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CONFIG_MAP_FILE="$SCRIPT_DIR/base/triton-config.yaml"

MODEL_NAME="mobilenetv4"
HUB_MODEL="mobilenetv4_conv_small.e2400_r224_in1k"
PVC_NAME="triton-models"
HELPER_POD="triton-models-loader"
HELPER_IMAGE="busybox:1.36"

SOURCE="auto"
ONNX_FILE=""
OUT_DIR=""
COPY="pod"
NAMESPACE="k8s-gpu-rl"
RESTART=0
DRY_RUN=0
PYTHON="${PYTHON:-python3}"

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# die, say, run, find_kubectl, find_helm
# shellcheck source=scripts/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for arg in "$@"; do
    case "$arg" in
        --source=auto | --source=hub | --source=local) SOURCE="${arg#--source=}" ;;
        --source=*) die "--source takes auto, hub or local, not '${arg#--source=}'" ;;
        --onnx=*) ONNX_FILE="${arg#--onnx=}" ;;
        --out=*) OUT_DIR="${arg#--out=}" ;;
        --copy=pod | --copy=hostpath | --copy=none) COPY="${arg#--copy=}" ;;
        --copy=*) die "--copy takes pod, hostpath or none, not '${arg#--copy=}'" ;;
        --namespace=*) NAMESPACE="${arg#--namespace=}" ;;
        --restart) RESTART=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option '$arg' (see --help)" ;;
    esac
done

if [[ -n "$ONNX_FILE" && $DRY_RUN -eq 0 && ! -f "$ONNX_FILE" ]]; then
    die "--onnx: no such file: $ONNX_FILE"
fi
if [[ $COPY == none && -z "$OUT_DIR" ]]; then
    die "--copy=none keeps the result only in --out=DIR; give one"
fi

if [[ $DRY_RUN -eq 1 ]]; then
    KUBECTL_CMD=(kubectl)
elif [[ $COPY != none || $RESTART -eq 1 ]]; then
    find_kubectl
fi

kc() {
    run "${KUBECTL_CMD[@]}" --namespace "$NAMESPACE" "$@"
}

# --- 1. the repository directory ---------------------------------------------------------
CLEANUP_DIR=""
EXPORT_DIR=""
if [[ -z "$OUT_DIR" ]]; then
    if [[ $DRY_RUN -eq 1 ]]; then
        OUT_DIR="<temporary directory>"
    else
        OUT_DIR=$(mktemp -d)
        CLEANUP_DIR="$OUT_DIR"
    fi
fi
cleanup() {
    local dir
    for dir in "$CLEANUP_DIR" "$EXPORT_DIR"; do
        if [[ -n "$dir" ]]; then
            rm -rf "$dir"
        fi
    done
}
trap cleanup EXIT
MODEL_DIR="$OUT_DIR/$MODEL_NAME"
ONNX_OUT="$MODEL_DIR/1/model.onnx"
run mkdir -p "$MODEL_DIR/1"

# --- 2. model.onnx -----------------------------------------------------------------------
# Exports timm's pretrained weights (downloaded from the Hugging Face hub) with the tensor
# names the Triton config and the Locust requests use, batch dimension dynamic.
HUB_EXPORT=$(
    cat <<EOF
import sys
import timm
import torch

model = timm.create_model("$HUB_MODEL", pretrained=True).eval()
example = torch.zeros(1, 3, 224, 224)
with torch.no_grad():
    torch.onnx.export(
        model,
        (example,),
        sys.argv[1],
        input_names=["input0"],
        output_names=["output0"],
        dynamic_axes={"input0": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
    )
print("exported", sys.argv[1])
EOF
)

from_hub() {
    say "model.onnx: timm $HUB_MODEL (pretrained, from the Hugging Face hub) -> $ONNX_OUT"
    run "$PYTHON" -c "$HUB_EXPORT" "$ONNX_OUT"
}

from_local_export() {
    local export_script="$REPO_ROOT/scripts/export_mobilenetv4.py" export_dir candidate found=""
    if [[ $DRY_RUN -eq 1 ]]; then
        export_dir="<temporary export directory>"
    else
        [[ -f "$export_script" ]] || die "$export_script not found; use --source=hub or --onnx=FILE"
        export_dir=$(mktemp -d)
        EXPORT_DIR="$export_dir"
    fi
    say "model.onnx: the repository's export (random weights, nothing downloaded)"
    run "$PYTHON" "$export_script" --out "$export_dir" --repo
    # Where the export puts its Triton repository (newest layout first), else its bare file.
    for candidate in "$export_dir/model_repository/$MODEL_NAME/1/model.onnx" \
        "$export_dir/$MODEL_NAME/1/model.onnx" "$export_dir/mobilenetv4_conv_small.onnx"; do
        if [[ $DRY_RUN -eq 0 && -f "$candidate" ]]; then
            found="$candidate"
            break
        fi
    done
    if [[ $DRY_RUN -eq 1 ]]; then
        found="$export_dir/model_repository/$MODEL_NAME/1/model.onnx"
    fi
    [[ -n "$found" ]] || die "the export wrote no model.onnx under $export_dir"
    run cp "$found" "$ONNX_OUT"
}

if [[ -n "$ONNX_FILE" ]]; then
    say "model.onnx: $ONNX_FILE"
    run cp "$ONNX_FILE" "$ONNX_OUT"
else
    case "$SOURCE" in
        hub) from_hub ;;
        local) from_local_export ;;
        auto)
            if [[ $DRY_RUN -eq 1 ]]; then
                from_hub
                say "(if that fails: the local export)"
                from_local_export
            elif from_hub; then
                :
            else
                say "the hub export failed (offline, or timm/onnx missing); using the local export"
                from_local_export
            fi
            ;;
    esac
fi

# --- 3. config.pbtxt, from the ConfigMap the Deployment mounts ---------------------------
say "config.pbtxt: from $CONFIG_MAP_FILE"
if [[ $DRY_RUN -eq 1 ]]; then
    echo "+ (write data[\"config.pbtxt\"] of $CONFIG_MAP_FILE to $MODEL_DIR/config.pbtxt)"
else
    "$PYTHON" - "$CONFIG_MAP_FILE" "$MODEL_DIR/config.pbtxt" <<'EOF'
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    config_map = yaml.safe_load(f)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write(config_map["data"]["config.pbtxt"])
EOF
fi

# --- 4. onto the PVC ---------------------------------------------------------------------
HELPER_MANIFEST=$(
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $HELPER_POD
  labels:
    app.kubernetes.io/name: $HELPER_POD
    app.kubernetes.io/part-of: k8s-gpu-rl
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: loader
      image: $HELPER_IMAGE
      command: ["sleep", "3600"]
      volumeMounts:
        - name: models
          mountPath: /models
  volumes:
    - name: models
      persistentVolumeClaim:
        claimName: $PVC_NAME
EOF
)

copy_with_pod() {
    say "copying into PVC $PVC_NAME through helper pod $HELPER_POD"
    if [[ $DRY_RUN -eq 1 ]]; then
        echo "+ kubectl --namespace $NAMESPACE apply -f - <<EOF"
        echo "$HELPER_MANIFEST"
        echo "EOF"
    else
        printf '%s\n' "$HELPER_MANIFEST" | "${KUBECTL_CMD[@]}" --namespace "$NAMESPACE" apply -f -
    fi
    kc wait --for=condition=Ready "pod/$HELPER_POD" --timeout=180s
    kc exec "$HELPER_POD" -- mkdir -p "/models/$MODEL_NAME/1"
    kc cp "$ONNX_OUT" "$HELPER_POD:/models/$MODEL_NAME/1/model.onnx"
    kc cp "$MODEL_DIR/config.pbtxt" "$HELPER_POD:/models/$MODEL_NAME/config.pbtxt"
    kc exec "$HELPER_POD" -- ls -lR "/models/$MODEL_NAME"
    kc delete pod "$HELPER_POD" --wait=false
}

copy_to_hostpath() {
    local volume path
    say "copying straight into PVC $PVC_NAME's directory on this machine"
    if [[ $DRY_RUN -eq 1 ]]; then
        volume="<volume of PVC $PVC_NAME>"
        path="<hostPath of that volume>"
        echo "+ kubectl --namespace $NAMESPACE get pvc $PVC_NAME -o jsonpath={.spec.volumeName}"
        echo "+ kubectl get pv <volume> -o jsonpath={.spec.hostPath.path}"
    else
        volume=$("${KUBECTL_CMD[@]}" --namespace "$NAMESPACE" get pvc "$PVC_NAME" -o jsonpath='{.spec.volumeName}')
        [[ -n "$volume" ]] || die "PVC $PVC_NAME is not bound yet (microk8s-hostpath binds it when" \
            "the first pod uses it): apply scripts/k8s/base, or use --copy=pod"
        path=$("${KUBECTL_CMD[@]}" get pv "$volume" -o jsonpath='{.spec.hostPath.path}')
        [[ -n "$path" ]] || die "volume $volume is not a hostPath volume; use --copy=pod"
    fi
    run sudo mkdir -p "$path/$MODEL_NAME/1"
    run sudo cp "$ONNX_OUT" "$path/$MODEL_NAME/1/model.onnx"
    run sudo cp "$MODEL_DIR/config.pbtxt" "$path/$MODEL_NAME/config.pbtxt"
}

case "$COPY" in
    pod) copy_with_pod ;;
    hostpath) copy_to_hostpath ;;
    none)
        CLEANUP_DIR=""
        say "model repository left in $OUT_DIR"
        ;;
esac

if [[ $RESTART -eq 1 ]]; then
    say "restarting Triton to load it"
    kc rollout restart deployment/triton
    kc rollout status deployment/triton --timeout=600s
fi
say "done"
