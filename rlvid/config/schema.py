"""The recipe schema: one typed dataclass per YAML section.

`load_recipe` merges YAML files and command-line overrides onto these dataclasses, so every
key is checked (unknown keys and mistyped values are errors) and every default is known.
`Literal[...]` fields accept only the listed strings. Names of registered functions are plain
strings, so plugins can add new ones: the algorithm pieces (policy loss, loss aggregation,
advantage and KL estimators, DPO loss) are checked against their registries when the recipe
loads (`rlvid.config.validation`); rewards, hooks and selection strategies when they are built.

Batch sizes are counted so they cannot be misread (verl #180, #1524):
- `trainer.global_prompts_per_step`: prompts per optimizer step over ALL processes; each
  prompt yields `rollout.num_generations` completions.
- `trainer.micro_batch_size_per_device`: sequences per forward/backward on one process.
- gradient accumulation steps are derived:
  global_prompts_per_step * num_generations / (micro_batch_size_per_device * num_processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import MISSING

# ---------------------------------------------------------------- model


@dataclass
class LoraConfig:
    enabled: bool = False  # train LoRA adapters instead of the full weights
    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator (scale = alpha / r)
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    path: str = ""  # HF model folder or hub id of the policy (and of the reference model)
    arch: str | None = None  # architecture hint (e.g. "qwen2_5_vl"); None = read from the model's config
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # weights dtype; auto = bf16 on GPU, fp32 on CPU
    attn_implementation: str = "sdpa"  # "sdpa", "flash_attention_2", "eager"
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    freeze_vision_tower: bool = False  # by default the whole model (vision tower, projector, LLM) is trained
    freeze_projector: bool = False
    freeze_llm: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    save_merged: bool = True  # with LoRA: final/ holds the adapters merged into the base weights, else the adapter
    trust_remote_code: bool = False  # run the model folder's own Python (modeling/processing code); warns when on


# ---------------------------------------------------------------- data


@dataclass
class TokenDropConfig:
    """Redundant-frame dropping (TimeChat-Online's differential token drop, in temporal-patch units).

    A pair of sampled frames (one temporal patch, i.e. one row of visual tokens per spatial patch)
    is dropped when its change from the last kept pair is below `threshold`; kept frames keep
    their true timestamps. Applied at decode time, so rollouts, log-prob passes, the update and
    evaluation all see the same frames (rlvid.data.token_drop).
    """

    # frame: drop frame pairs by mean change; patch: drop a pair unless some token's region changed;
    # token: drop single visual tokens from the LLM input, keeping their positions (rlvid.models.token_prune)
    mode: Literal["none", "frame", "patch", "token"] = "none"
    threshold: float = 0.02  # change (mean |delta pixel| on a 0-1 scale) below which a pair / token is redundant
    min_kept_frames: int = 4  # never keep fewer frames than this (the first pair is always kept)


@dataclass
class VideoConfig:
    fps: float = 2.0  # frames sampled per second of video
    min_frames: int = 4
    max_frames: int = 64
    total_pixels: int = 2048 * 28 * 28  # pixel budget of all sampled frames together (1605632)
    max_pixels_per_frame: int | None = None  # None = the sampler's default per-frame bounds
    min_pixels_per_frame: int | None = None
    cache_max_bytes: int = 2 * 1024**3  # decoded-frame cache (per process), so a video is decoded once per step
    streaming: bool = False  # feed the video as a timestamped stream of frame chunks
    stream_chunk_seconds: float = 1.0  # with streaming: seconds of video per chunk
    token_drop: TokenDropConfig = field(default_factory=TokenDropConfig)


@dataclass
class DataConfig:
    # JSONL file, HF dataset (`path@split`, a save_to_disk folder or a Hub name), or a list of them with weights:
    # [{path: a.jsonl, weight: 2}, b.jsonl] (docs/data.md; rlvid.data.sources)
    train: Any = ""
    val: Any = None  # as train, without weights; a dataset's split `val` also finds `validation`, `valid`, `dev`
    test: Any = None
    column_map: dict[str, str] = field(default_factory=dict)  # dataset column -> Sample field, e.g. {query: question}
    video_root: str | None = None  # folder relative video paths resolve against; None = the data file's / dataset's
    skip_bad_samples: bool = False  # drop samples that fail validation instead of raising
    check_videos: bool = False  # open every video at load time (slow; catches broken files early)
    check_video_files: bool = True  # check every video file exists at load time (cheap)
    max_prompt_tokens: int = 0  # a question longer than this many tokens is refused (named); 0 = no cap
    tasks: list[str] | None = None  # keep only these tasks (None = all)
    max_samples: int | None = None  # cap on samples per split (None = all)
    prompt_template: str = "default"  # builtin task-prompt set (default, temporal_r1) or a .yaml file (docs/prompts.md)
    reasoning: bool = True  # prompts ask for <think>...</think> before <answer>; SFT targets carry a think block
    system_prompt: str | None = None  # a system message before every prompt; None = the chat template's default
    video: VideoConfig = field(default_factory=VideoConfig)


# ---------------------------------------------------------------- rollout


@dataclass
class VllmConfig:
    gpu_memory_utilization: float = 0.5  # colocated engine: share of GPU memory vLLM may take
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = False  # colocated: offload vLLM's weights/cache during the update (GPU only)
    max_num_batched_tokens: int = 0  # 0 = auto (CPU: 16384, so seeded sampling never sees a split prefill)
    cpu_kvcache_space_gib: float = 0.0  # CPU: KV cache size; 0 = auto (10% of RAM, 1-4 GiB)
    cpu_threads_bind: str = "auto"  # CPU: cores for vLLM's OpenMP threads, e.g. "0-1"; auto = this process's
    server_host: str = "127.0.0.1"  # engine "vllm-server": where `trl vllm-serve`-style server listens
    server_port: int = 8000
    api_key_env: str | None = None  # vllm-server: NAME of the env variable holding the server's API key, never the key


@dataclass
class RolloutConfig:
    engine: Literal["hf", "vllm", "vllm-server"] = "hf"  # hf = transformers generate (CPU default)
    num_generations: int = 8  # G: completions sampled per prompt (the group)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256  # also dr_grpo's constant completion length
    repetition_penalty: float = 1.0
    vllm: VllmConfig = field(default_factory=VllmConfig)


# ---------------------------------------------------------------- trainer


@dataclass
class TrainerConfig:
    algorithm: Literal["grpo", "mdpo", "sft"] = "grpo"
    output_dir: str = "runs/default"  # run folder: recipe.yaml, metrics.jsonl, checkpoints
    seed: int = 42
    global_prompts_per_step: int = 8  # prompts per optimizer step, all processes together
    micro_batch_size_per_device: int = 4  # sequences per forward/backward on one process
    num_iterations: int = 1  # mu: policy updates per batch of rollouts (1 = on-policy, ratio 1)
    epochs: int = 1
    max_steps: int = -1  # optimizer steps; -1 = as many as `epochs` take
    lr: float = 1e-6
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    warmup_ratio: float = 0.0  # share of steps with linear warm-up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # gradient clipping; 0 = off
    policy_loss: str = "clipped"  # registered policy loss (rlvid.algos.policy_loss) or a plugin (pkg.mod:fn)
    policy_loss_kwargs: dict[str, Any] = field(default_factory=dict)  # the loss's own options, next to epsilon...
    # loss aggregation (rlvid.algos.aggregation): seq_mean_token_mean (alias grpo) | token_mean (dapo) |
    # seq_mean_token_sum_norm (dr_grpo) | a plugin
    loss_agg: str = "seq_mean_token_mean"
    advantage: str = "grpo"  # registered advantage estimator: grpo, rloo
    scale_rewards: Literal["group", "batch", "none"] = "group"  # divide centred rewards by group/batch std or not
    epsilon: float = 0.2  # PPO clip: ratio kept in [1 - epsilon, 1 + epsilon_high]
    epsilon_high: float | None = None  # DAPO clip-higher; None = epsilon
    importance_sampling_level: Literal["token", "sequence"] = "token"  # sequence = GSPO
    beta: float = 0.0  # KL penalty coefficient; 0 = no reference model needed
    kl_estimator: str = "low_var_kl"  # registered KL estimator (rlvid.algos.kl): k1 | k2 | k3 | low_var_kl | a plugin
    rollout_is_correction: Literal["none", "truncate"] = "none"  # correct rollout-engine/trainer log-prob mismatch
    rollout_is_cap: float = 2.0  # truncation of those importance weights
    logging_steps: int = 1
    save_steps: int = 0  # checkpoint every N steps; 0 = only at the end
    eval_steps: int = 0  # evaluate every N steps; 0 = after each epoch
    # early stop: end the run (saving the model as final) after the first evaluation where every named metric
    # reaches its value, e.g. {"eval/temporal_grounding/mIoU": 0.2}; {} = run all steps
    stop_when: dict[str, float] = field(default_factory=dict)
    resume: str = "none"  # none | auto (latest checkpoint in output_dir) | path to a checkpoint
    overwrite_output_dir: bool = False  # start over in a folder holding another run (its files are deleted)
    allow_changed_settings: bool = False  # resume even though the run's fingerprint changed (docs/reliability.md)
    on_hook_error: Literal["warn", "raise"] = "warn"  # a failing evaluation hook: log it (name, step) and go on
    collective_timeout_s: float = 1800.0  # distributed collectives: a stalled rank ends the job after this
    phase_warn_factor: float = 5.0  # warn when a step phase takes this many times its recent median; 0 = off
    on_nan: Literal["raise", "skip"] = "raise"  # non-finite loss: stop, or skip the step and log it
    precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # mixed precision of the update
    progress_bar: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # console; debug = other libraries' INFO too
    eval_on_start: bool = False  # run the evaluation hooks before the first step (the step-0 baseline)
    log_completions: int = 0  # sample completions per logged step in a wandb table (0 = off)
    save_total_limit: int = 2  # checkpoints kept in output_dir (oldest removed first); 0 = keep all
    advantage_sign: Literal[1, -1] = 1  # -1 flips every advantage: a control run that must NOT learn
    max_eval_samples: int | None = None  # cap on val samples an evaluation hook decodes (None = all)
    eval_batch_size: int = 8  # prompts per greedy-decoding batch in evaluation hooks
    eval_convention: Literal["standard", "training", "temporal_r1"] = "standard"  # grounding IoU (docs/fidelity.md)
    eval_dense: Literal["rlvid", "official"] = "rlvid"  # dense captioning: rlvid's | the official scripts' numbers
    reuse_vision: bool = True  # compute each video's visual features once per step (rollouts, old/ref, frozen update)
    shared_prefix: bool = True  # run a prompt once for its G completions (hf prefill and log-prob passes)


# ---------------------------------------------------------------- SFT


@dataclass
class SftConfig:
    """Supervised fine-tuning on the ground-truth answer text (`rlvid sft`, or a warm start before GRPO)."""

    steps: int = 0  # optimizer steps; with trainer.algorithm grpo, > 0 runs an SFT warm start first
    lr: float = 1.0e-5
    global_samples_per_step: int = 8  # samples per optimizer step, all processes together
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    warmup_ratio: float = 0.0


# ---------------------------------------------------------------- M-DPO


@dataclass
class MdpoConfig:
    """Metric-based DPO (VidChain): sample outputs, rank them by a task metric, DPO on pairs (rlvid.trainers.mdpo)."""

    beta: float = 0.1
    loss: str = "sigmoid"  # registered DPO loss (rlvid.algos.dpo_loss): sigmoid | ipo | a plugin
    loss_kwargs: dict[str, Any] = field(default_factory=dict)  # the DPO loss's own options, next to beta...
    label_smoothing: float = 0.0  # sigmoid only
    gap_weighting: Literal["none", "normalized", "raw"] = "none"  # per-pair weight from the metric gap
    margin_scale: float = 0.0  # margin = margin_scale * metric gap
    sft_gamma: float = 0.0  # coefficient of the NLL term on the chosen completion (VidChain)
    num_samples: int = 4  # completions sampled per prompt to build pairs
    min_gap: float = 0.0  # keep pairs whose metric gap is at least this (ties never pair); IoU/SODA_c are on 0-1
    pairs_per_prompt: int = 0  # keep at most this many pairs per prompt, largest gaps first; 0 = all
    metric: list[RewardSpec] = field(default_factory=list)  # rewards that rank the samples; [] = rewards.functions
    pairs: str | None = None  # folder of pairs (rlvid mdpo-pairs) to train on; None = build them in the run
    pairs_per_step: int = 8  # pairs per optimizer step, all processes together (a pair is 2 sequences)
    generation_batch_size: int = 8  # prompts per generate call when building pairs (also the resume unit)
    reference: Literal["precomputed", "model"] = "precomputed"  # reference log-probs stored with pairs, or live
    cotasks: bool = False  # VidChain chain-of-tasks prompting for dense_caption samples
    cotasks_order: Literal["segments_first", "captions_first"] = "segments_first"  # or count->captions->segments
    cotasks_caption_scorer: Literal["meteor", "cider", "rouge_l"] = "meteor"  # caption turn: SODA_c on GT segments
    rounds: int = 1  # sample -> pair -> train rounds (round_k/ folders when > 1)


# ---------------------------------------------------------------- streaming


@dataclass
class StreamSyntheticConfig:
    """The synthetic streams a streaming run trains (train) and evaluates (val) on (rlvid.data.synthetic_streaming)."""

    kinds: list[Literal["alert", "narration", "magqa"]] = field(default_factory=lambda: ["alert"])
    chunks: int = 8  # stream length in chunks of data.video.stream_chunk_seconds
    train: int = 64  # training streams
    val: int = 48  # held-out streams (the val split: hooks and `rlvid eval`)
    seed: int = 0  # training streams; held-out streams use seed + 1000


@dataclass
class StreamingConfig:
    """Streaming RL (docs/streaming.md): after each chunk of `data.video.stream_chunk_seconds` the policy stays
    silent or speaks. With `enabled`, `trainer.algorithm` grpo / mdpo runs on streaming rollouts of the tiny
    streaming LM (rlvid.models.stream_lm), or of `model.path` with `model: qwen_vl`, over `synthetic` streams
    (or data files with stream_events); `sft.steps` is its warm start."""

    enabled: bool = False
    max_response_tokens: int = 3  # words per response (then `<end>` is forced)
    credit: Literal["decision", "trajectory"] = "decision"  # per-decision reward-to-go, or one advantage per stream
    word_rewards: list[str] = field(default_factory=lambda: ["stream_content"])  # labels that value a response's words
    sft_times: Literal["random", "end"] = "random"  # when the warm start's targets speak (never the due time)
    tolerance: float = 1.0  # evaluation: seconds after an event's due time a response still counts as on time
    model: Literal["tiny_lm", "qwen_vl"] = "tiny_lm"  # qwen_vl: model.path through QwenVLStream (policy/stream_vl.py)
    drop_threshold: float | None = None  # qwen_vl: DTD, drop visual tokens that moved less than this (0-1 scale)
    synthetic: StreamSyntheticConfig = field(default_factory=StreamSyntheticConfig)


# ---------------------------------------------------------------- rewards, selection, hooks, logging


@dataclass
class RewardSpec:
    """One reward of a recipe (the one spec class: `rewards` builds from it, `rewards.parse_reward_spec`
    reads it from a mapping or a name)."""

    name: str = MISSING  # builtin name, package.module:function or ./file.py:function
    weight: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the reward function
    label: str | None = None  # the key it is logged under; default: the builtin or function name

    def default_label(self) -> str:
        return self.label or self.name.rpartition(":")[2]


@dataclass
class RewardsConfig:
    functions: list[RewardSpec] = field(default_factory=list)
    on_error: Literal["raise", "zero"] = "raise"  # a reward that raises: stop, or score 0 and log it
    timeout_s: float = 600.0  # one reward call longer than this is interrupted and handled as on_error; 0 = none


@dataclass
class OfflineSelection:
    """`rlvid select`: k sampled rollouts per training sample, then a strategy (data_selection/README.md)."""

    strategy: str = "variance_aware"  # registered selection strategy (data_selection); none = keep all samples
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_rollouts: int = 8  # k: rollouts per sample (`rlvid select --k` overrides)
    batch_size: int = 8  # prompts per generate call on each process (also the resume unit)
    pass_threshold: float | None = None  # total reward a rollout needs to pass; None = half the max attainable


@dataclass
class SelectionConfig:
    offline: OfflineSelection = field(default_factory=OfflineSelection)
    online: Literal["none", "zero_variance", "dynamic_sampling"] = "none"  # drop / refill groups with equal rewards
    max_tries: int = 3  # dynamic_sampling: generation rounds to refill a batch
    weighted_sampling: bool = True  # train samples carrying meta.selection.weight are drawn by it (with replacement)


@dataclass
class HookSpec:
    name: str = MISSING  # registered hook (rlvid.eval)
    every_n_steps: int = 0  # 0 = at each evaluation (trainer.eval_steps)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggingConfig:
    wandb: Literal["offline", "online", "disabled"] = "offline"
    project: str = "rlvid"
    run_name: str | None = None  # None = the output_dir's name
    metrics_jsonl: bool = True  # write output_dir/metrics.jsonl
    secret_env: list[str] = field(default_factory=list)  # more variable NAMES whose values are redacted from outputs


# ---------------------------------------------------------------- recipe


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    mdpo: MdpoConfig = field(default_factory=MdpoConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    hooks: list[HookSpec] = field(default_factory=list)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
