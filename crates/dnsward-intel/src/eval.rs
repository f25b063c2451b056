//! Replay evaluator.
