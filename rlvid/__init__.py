"""rlvid: RL post-training for video LLMs.

`from rlvid import GRPOTrainer, GRPOConfig, SFTTrainer, SFTConfig` is the Python API (rlvid/api/,
docs/python_api.md); it is imported on first use, so `import rlvid` stays light.
"""

from rlvid import own_imports

__version__ = "0.1.0"

own_imports.install()  # `rewards` / `data_selection` are rlvid's own, whatever a user's working folder holds

_API = ("GRPOConfig", "GRPOTrainer", "SFTConfig", "SFTTrainer")


def __getattr__(name: str):
    if name in _API:
        import rlvid.api  # the package root's one import from above: a lazy facade (docs/architecture.md)

        return getattr(rlvid.api, name)
    raise AttributeError(f"module 'rlvid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
