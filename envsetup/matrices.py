"""Load the compatibility knowledge in `matrices/*.toml` into frozen dataclasses.

Every fact lives once, in the data files, with its source; this module only reads and indexes it.
The files ship inside the wheel (as `envsetup/matrices/`) and are read from the source tree when
running from a checkout.

CONTRACT (filled in by the matrices work; the resolver codes against these names):

- `load(directory=None) -> Matrices`, cached per directory.
- `Matrices.releases`: every torch release, ascending by version.
- `Matrices.release(version) -> Release | None`.
- `Matrices.arch_list(torch, variant, platform) -> ArchList | None`: the GPU code in that wheel.
- `Matrices.rocm_targets(variant) -> tuple[str, ...] | None`: gfx targets of a ROCm variant.
- `Matrices.minor_compat_floor(cuda_major, os) -> str | None`: NVIDIA's minor-version-compat
  minimum driver for CUDA major X ("525.60.13" for 12 on Linux).
- `Matrices.toolkit_driver(cuda, os) -> str | None`: minimum driver of toolkit release X.Y (GA row).
- `Matrices.max_cuda_for_driver(driver, os) -> str | None`: the newest CUDA X.Y a driver supports
  (for drivers too old to print "CUDA Version").
"""
