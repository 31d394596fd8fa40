"""Language models: loading a model and its tokenizer, encoding chats, batched generation; GGUF
bases; sentence embeddings. Above core/ and families/."""
