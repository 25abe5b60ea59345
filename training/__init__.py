"""Fine-tune, evaluate, compare and export BERT-family models as textroute artifacts."""
