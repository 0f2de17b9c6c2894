"""charlm: character-level LSTM language models you can train, inspect and serve."""
