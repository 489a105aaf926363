"""A tiny streaming policy for CPU experiments: a Qwen2 language model that reads frames.

Each frame becomes one embedding (its pixels average-pooled to `pool x pool`, then a linear
projector), placed where the token sequence holds `<frame>`; words and time labels are single
tokens of a closed vocabulary (`StreamVocab`). It is the smallest model with the streaming
interface the rollout needs (`embed`, a forward over embeddings with a KV cache), so timing
can be learned on two CPU cores in minutes. It is not a Qwen-VL: the Qwen-VL policy gets the same
interface from `rlvid.policy.stream_vl.QwenVLStream` (docs/streaming.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlvid.data.streaming import timestamp_label

SPECIALS = ("<pad>", "<bos>", "<frame>", "<silent>", "<end>")


class StreamVocab:
    """Word-level vocabulary: the specials, one time label per chunk end, and the given words."""

    def __init__(self, words: list[str], max_chunks: int = 32, chunk_seconds: float = 1.0):
        self.chunk_seconds = chunk_seconds
        times = [timestamp_label(k * chunk_seconds) for k in range(max_chunks + 1)]
        self.tokens = list(SPECIALS) + times + sorted(set(words) - set(SPECIALS) - set(times))
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad, self.bos, self.frame, self.silent, self.end = (self.ids[t] for t in SPECIALS)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Ids of the whitespace-separated words of `text` (lower case, final punctuation dropped)."""
        out = []
        for word in text.lower().replace(".", " ").replace("?", " ").replace(",", " ").split():
            if word not in self.ids:
                raise ValueError(f"word {word!r} is not in the streaming vocabulary ({len(self)} tokens)")
            out.append(self.ids[word])
        return out

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i not in (self.pad, self.bos, self.end, self.silent))


@dataclass(frozen=True)
class StreamLMSize:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    pool: int = 4


class TinyStreamLM(nn.Module):
    """Qwen2 causal LM + frame projector; `tokens_fed` counts every position it has computed."""

    def __init__(self, vocab: StreamVocab, size: StreamLMSize = StreamLMSize(), seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=len(vocab), hidden_size=size.hidden, num_hidden_layers=size.layers,
                             num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
                             intermediate_size=size.intermediate, max_position_embeddings=1024,
                             tie_word_embeddings=False, pad_token_id=vocab.pad, bos_token_id=vocab.bos,
                             eos_token_id=vocab.end)
        self.vocab = vocab
        self.pool = size.pool
        self.lm = Qwen2ForCausalLM(config)
        self.frame_proj = nn.Linear(3 * size.pool * size.pool, size.hidden)
        self.tokens_fed = 0

    def embed(self, ids: list[int] | torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """[1, L, H] embeddings of `ids`, the `<frame>` positions filled, in order, from `frames` (F, h, w, 3) uint8."""
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)
        out = self.lm.get_input_embeddings()(ids)
        where = (ids[0] == self.vocab.frame).nonzero().flatten()
        n = 0 if frames is None else len(frames)
        if len(where) != n:
            raise ValueError(f"{len(where)} <frame> tokens but {n} frames")
        if n:
            out = out.clone()
            out[0, where] = self.frame_features(frames).to(out.dtype)
        return out

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0
        pooled = nn.functional.adaptive_avg_pool2d(x, self.pool).flatten(1)
        return self.frame_proj(pooled - 0.5)

    def forward(self, embeds: torch.Tensor, past_key_values=None, attention_mask: torch.Tensor | None = None):
        """Logits [B, L, V] and the updated cache for `embeds` [B, L, H] after `past_key_values`."""
        self.tokens_fed += int(embeds.shape[0] * embeds.shape[1])
        out = self.lm(inputs_embeds=embeds, past_key_values=past_key_values, attention_mask=attention_mask,
                      use_cache=past_key_values is not None or attention_mask is None)
        return out.logits, out.past_key_values

    def forward_batch(self, embeds: torch.Tensor, past_key_values, attention_mask: torch.Tensor,
                      position_ids: torch.Tensor):
        """`forward` for rows of different lengths (rlvid/rollout/streaming_batched.py): `attention_mask`
        [B, cached + L] marks the real slots, `position_ids` [B, L] place each row's new tokens;
        `tokens_fed` counts the real new tokens only (padding is no position of any sequence)."""
        self.tokens_fed += int(attention_mask[:, -embeds.shape[1]:].sum())
        out = self.lm(inputs_embeds=embeds, past_key_values=past_key_values, attention_mask=attention_mask,
                      position_ids=position_ids, use_cache=True)
        return out.logits, out.past_key_values


def save_stream_lm(model: TinyStreamLM, folder: str | Path, size: StreamLMSize = StreamLMSize()) -> Path:
    """The model's weights, vocabulary and size under `folder` (stream_lm.pt, stream_lm.json)."""
    folder = Path(folder)
    write_stream_lm_meta(model, folder, size)
    torch.save(model.state_dict(), folder / "stream_lm.pt")
    return folder


def write_stream_lm_meta(model: TinyStreamLM, folder: str | Path, size: StreamLMSize = StreamLMSize()) -> Path:
    """stream_lm.json (vocabulary and size) alone: what makes a checkpoint's `model.safetensors` loadable."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = [t for t in model.vocab.tokens if t not in SPECIALS and not t.startswith("<t=")]
    times = sum(t.startswith("<t=") for t in model.vocab.tokens)
    meta = {"words": words, "max_chunks": times - 1, "chunk_seconds": model.vocab.chunk_seconds,
            "size": asdict(size)}
    (folder / "stream_lm.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def load_stream_lm(folder: str | Path) -> TinyStreamLM:
    """A model written by `save_stream_lm`, or a training checkpoint (`model.safetensors` + stream_lm.json);
    names the missing file when `folder` holds none."""
    folder = Path(folder)
    weights = folder / "stream_lm.pt"
    if not weights.is_file() and (folder / "model.safetensors").is_file():
        weights = folder / "model.safetensors"
    for path in (folder / "stream_lm.json", weights):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a streaming model folder (save_stream_lm)")
    meta = json.loads((folder / "stream_lm.json").read_text())
    vocab = StreamVocab(meta["words"], max_chunks=meta["max_chunks"], chunk_seconds=meta["chunk_seconds"])
    model = TinyStreamLM(vocab, StreamLMSize(**meta["size"]))
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(weights)))
    else:
        model.load_state_dict(torch.load(weights, weights_only=True))
    return model
