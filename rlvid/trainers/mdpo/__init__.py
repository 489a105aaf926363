"""M-DPO (VidChain's metric-based DPO), its pieces in one package.

    cotasks.py     chain-of-tasks prompts for dense captioning (ChainPrompt, ChainInputBuilder, turn scores)
    pairs.py       the Pair record, pairing by metric gap, the pair folder (writer, reader, settings)
    build.py       sample -> score -> pair with the rollout engine (`rlvid mdpo-pairs`)
    batch.py       pairs -> model inputs; per-pair sequence log-probs
    trainer.py     MDPOTrainer: the DPO update on the shared training loop
    chain_eval.py  the `eval_dense_caption_cotasks` hook
    run.py / cli.py  `rlvid train` with algorithm mdpo (rounds), `rlvid mdpo-pairs`
"""
