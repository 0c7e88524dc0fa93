"""The check that runs INSIDE the environment being verified; it reports facts, never verdicts.

It needs only the standard library and torch, because envsetup is usually not installed in the
environment it checks: `verify` runs this file's source with `python -c` and reads the one JSON
line it prints after MARKER. Errors are caught and reported as strings (torch's own messages are
the evidence the diagnosis quotes). Keep it Python 3.9 compatible: it runs on the target Python.
"""

from __future__ import annotations

import json
import platform
import sys
import sysconfig
import time
from typing import Any

MARKER = "ENVSETUP-VERIFY-JSON:"
COMPANIONS = ("torchvision", "torchaudio")


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _torch_pin(dist: str) -> str | None:
    """The `torch==X` pin in a companion's metadata: which torch its compiled code was built for."""
    from importlib import metadata

    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        spec = line.split(";")[0].replace(" ", "").replace("(", "").replace(")", "")
        if spec.startswith("torch=="):
            return spec[len("torch==") :]
    return None


def _companion(name: str, torch: Any) -> dict[str, Any] | None:
    from importlib import metadata

    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
    info: dict[str, Any] = {"installed": installed, "torch_pin": _torch_pin(name)}
    try:
        module = __import__(name)
        info["version"] = str(module.__version__)
    except Exception as exc:  # the seed error "operator torchvision::nms does not exist" lands here
        info["error"] = _error(exc)
        return info
    if name == "torchvision":
        try:
            boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
            scores = torch.tensor([0.9, 0.8, 0.7])
            keep = module.ops.nms(boxes, scores, 0.5)
            info["ops"] = [int(index) for index in keep.tolist()] == [0, 2]
        except Exception as exc:
            info["ops"] = False
            info["error"] = _error(exc)
    return info


def _other_devices(torch: Any) -> list[dict[str, Any]]:
    """Apple MPS and Intel XPU devices: round-tripped like CUDA ones (no bench)."""
    found: list[dict[str, Any]] = []
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    if mps is not None and mps.is_available():
        found.append({"device": "mps", "name": "Apple MPS", "capability": None})
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        for index in range(xpu.device_count()):
            name = xpu.get_device_name(index)
            found.append({"device": f"xpu:{index}", "name": name, "capability": None})
    return found


def _devices(torch: Any) -> list[dict[str, Any]]:
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append(
            {
                "device": f"cuda:{index}",
                "name": torch.cuda.get_device_name(index),
                "capability": list(torch.cuda.get_device_capability(index)),
                "memory_mib": int(props.total_memory) // (1024 * 1024),
            }
        )
    return found


def _round_trip(torch: Any, device: str) -> dict[str, Any]:
    """A tensor and a small model go to `device`, compute, come back, and match the CPU result."""
    result: dict[str, Any] = {"device": device}
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            inputs = torch.randn(64, 32)
            model = torch.nn.Linear(32, 8)
            expected = torch.relu(model(inputs))
            model.to(device)
            got = torch.relu(model(inputs.to(device))).to("cpu")
            model.to("cpu")
            result["max_abs_diff"] = float((got - expected).abs().max().item())
            result["ok"] = bool(torch.allclose(got, expected, rtol=1e-3, atol=1e-3))
    except Exception as exc:
        result["ok"] = False
        result["error"] = _error(exc)
    return result


def _timed(torch: Any, device: str, work: Any, repeat: int) -> float:
    """Best wall time of `work()` over `repeat` runs, synchronising the device around each."""
    work()
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        work()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _device_bench(torch: Any, device: str, options: dict[str, Any]) -> dict[str, Any]:
    """Copy bandwidth (pageable vs pinned host memory) and matmul throughput on one device."""
    size_mib = int(options.get("copy_mib", 256))
    gpu_n = int(options.get("gpu_matmul_n", 8192))
    host = torch.empty(size_mib * 1024 * 1024, dtype=torch.uint8)
    pinned = host.pin_memory()
    on_device = host.to(device)
    gbytes = size_mib / 1024
    figures: dict[str, Any] = {"device": device, "copy_mib": size_mib}
    for label, work in (
        ("h2d_pageable_gbs", lambda: host.to(device)),
        ("h2d_pinned_gbs", lambda: pinned.to(device, non_blocking=True)),
        ("d2h_pageable_gbs", lambda: on_device.to("cpu")),
        ("d2h_pinned_gbs", lambda: pinned.copy_(on_device, non_blocking=True)),
    ):
        figures[label] = round(gbytes / _timed(torch, device, work, 5), 1)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    x = torch.randn(gpu_n, gpu_n, device=device, dtype=dtype)
    y = torch.randn(gpu_n, gpu_n, device=device, dtype=dtype)
    seconds = _timed(torch, device, lambda: x @ y, 5)
    figures["matmul"] = f"{str(dtype).replace('torch.', '')} {gpu_n}^3"
    figures["tflops"] = round(2 * gpu_n**3 / seconds / 1e12, 1)
    figures["pinned_vs_pageable_h2d"] = round(
        figures["h2d_pinned_gbs"] / figures["h2d_pageable_gbs"], 1
    )
    return figures


def _bench(torch: Any, devices: list[str], options: dict[str, Any]) -> dict[str, Any]:
    cpu_n = int(options.get("cpu_matmul_n", 1024))
    a, b = torch.randn(cpu_n, cpu_n), torch.randn(cpu_n, cpu_n)
    cpu_s = _timed(torch, "cpu", lambda: a @ b, 3)
    cpu_gflops = round(2 * cpu_n**3 / cpu_s / 1e9, 1)
    bench: dict[str, Any] = {
        "cpu": {
            "matmul": f"fp32 {cpu_n}^3",
            "gflops": cpu_gflops,
            "threads": torch.get_num_threads(),
        },
        "devices": [],
    }
    for device in devices:
        figures = _device_bench(torch, device, options)
        figures["device_vs_cpu_matmul"] = round(figures["tflops"] * 1000 / cpu_gflops, 1)
        torch.cuda.empty_cache()
        bench["devices"].append(figures)
    return bench


def check(options: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "executable": sys.executable,
        "torch": None,
    }
    try:
        import torch
    except Exception as exc:  # ImportError, OSError from a missing libcudart, ...
        facts["torch_error"] = _error(exc)
        return facts
    hip = getattr(torch.version, "hip", None)
    facts["torch"] = {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "hip": hip,
        "file": str(getattr(torch, "__file__", "")),
    }
    try:
        facts["arch_list"] = list(torch.cuda.get_arch_list())
    except Exception as exc:
        facts["arch_list"] = []
        facts["arch_list_error"] = _error(exc)
    if torch.version.cuda or hip or options.get("gpu_expected"):
        try:
            torch.cuda.init()  # raises torch's own message: the evidence users search for
        except Exception as exc:
            facts["cuda_init_error"] = _error(exc)
    usable = torch.cuda.is_available() and "cuda_init_error" not in facts
    cuda_devices = _devices(torch) if usable else []
    try:
        others = _other_devices(torch)
    except Exception as exc:
        others = []
        facts["other_devices_error"] = _error(exc)
    facts["devices"] = cuda_devices + others
    devices = [entry["device"] for entry in facts["devices"]]
    facts["round_trips"] = [_round_trip(torch, device) for device in ["cpu", *devices]]
    facts["companions"] = {
        name: info for name in COMPANIONS if (info := _companion(name, torch)) is not None
    }
    if options.get("bench"):
        try:
            facts["bench"] = _bench(torch, [d["device"] for d in cuda_devices], options)
        except Exception as exc:
            facts["bench"] = {"error": _error(exc)}
    return facts


def main(argv: list[str]) -> int:
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    facts = check(options)
    sys.stdout.flush()
    print(MARKER + json.dumps(facts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
