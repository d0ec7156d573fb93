"""Stand-in for the ``sgl_kernel`` package, used only by the CPU engine.

Why this exists
---------------
SGLang imports ``sgl_kernel`` (its compiled kernel library) while it starts,
also on the CPU path.  The CPU build of that library is not published on PyPI:
the PyPI ``sglang-kernel`` wheel is CUDA-only (it fails to import without
``libcuda``) and has no source distribution.  On a CPU without AMX, SGLang's
CPU path (``--device cpu --attention-backend torch_native``) imports names from
``sgl_kernel`` but never calls them: the torch-native implementations run
instead.  Measured with SGLang 0.5.23 and ``LKN_SGL_KERNEL_STUB_TRACE=1``
(which logs every lookup and call to stderr, i.e. to logs/engine.log): start-up
looks up eight names (``assign_req_to_token_pool_cpu``,
``copy_all_layer_kv_cache_cpu``, ``assign_extend_cache_locs_cpu``,
``assign_draft_cache_locs_contiguous_cpu``, ``build_tree_kernel_efficient_cpu``,
``fill_accept_out_cache_loc_cpu``, ``fill_bonus_tokens_cpu``,
``verify_tree_greedy_cpu``), and start-up plus chat, streaming, logprobs,
``/generate`` and ``/abort_request`` traffic made zero calls into this module.

So this package only has to satisfy ``import sgl_kernel`` and
``from sgl_kernel import <name>``.  Every attribute resolves (module-level
``__getattr__``) to a function that raises ``NotImplementedError`` with a
clear message when called.  Any code path that really needs a kernel fails
loudly at the first call instead of silently computing something wrong.

Sub-modules (``sgl_kernel.flash_attn`` and the like) are deliberately not
provided: importing one raises ``ModuleNotFoundError``, which SGLang already
treats as "kernel not available" where it is optional.

It is put on ``PYTHONPATH`` by ``scripts/start_engine.sh`` for the CPU engine
only; it must never be installed next to a real ``sgl_kernel`` (GPU).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn

__version__ = "0.0.0+lkn.cpu.stub"
__all__: list[str] = []

LKN_CPU_STUB = True

_calls: list[str] = []  # names of stub functions that were called (for debugging)
# LKN_SGL_KERNEL_STUB_TRACE=1 logs every name looked up and every call to stderr
# (so the engine log shows what SGLang imported from here and whether it called it).
_TRACE = os.environ.get("LKN_SGL_KERNEL_STUB_TRACE", "") not in ("", "0")


def _trace(msg: str) -> None:
    if _TRACE:
        print(f"[sgl_kernel stub pid={os.getpid()}] {msg}", file=sys.stderr, flush=True)


def _make_stub(name: str) -> Callable[..., NoReturn]:
    def _not_implemented(*args: Any, **kwargs: Any) -> NoReturn:
        _calls.append(name)
        _trace(f"CALL {name}")
        raise NotImplementedError(
            f"sgl_kernel.{name} was called, but this is L-kn's CPU stand-in for "
            "sgl_kernel (scripts/engine/sgl_kernel), which has no kernels. "
            "This code path needs the real sgl_kernel (a GPU build, or a CPU "
            "build with AMX support); run the engine on such a machine, or "
            "choose options that avoid this kernel."
        )

    _not_implemented.__name__ = name
    _not_implemented.__qualname__ = name
    _not_implemented.__module__ = __name__
    _not_implemented.__doc__ = f"Stand-in for sgl_kernel.{name}: always raises NotImplementedError."
    return _not_implemented


def __getattr__(name: str) -> Callable[..., NoReturn]:
    # Dunder and private lookups (``__path__``, ``__wrapped__``, ...) must keep
    # their normal "missing" behaviour, or import machinery and introspection
    # would be misled.
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _trace(f"lookup {name}")
    fn = _make_stub(name)
    globals()[name] = fn  # cache, so identity is stable across lookups
    return fn
