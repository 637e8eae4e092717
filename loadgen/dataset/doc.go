// Package dataset loads the prompts a run sends: from a local file (JSON
// lines or a JSON array, CSV or plain text), from a Hugging Face dataset
// (hf://ORG/NAME, fetched from the datasets-server and cached on disk),
// or generated (synthetic). Rows are plain prompts, OpenAI chat messages
// or ShareGPT conversations (Format), detected or forced; a row may set
// its own output length. Load is the entry point; Synthetic makes prompts
// directly. Synthetic prompts are made exactly their target length in
// tokens with a Tokenizer (the server's POST /tokenize, or the model's
// tokenizer.json), and may share prefixes by groups (MakeSynthetic).
//
// This package must not depend on the load generator's engine (package
// loadgen), on cmd/, energy, exporter or dump (ARCHITECTURE.md's table,
// enforced by TestLayering).
package dataset
