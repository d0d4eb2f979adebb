//! Vision-language model clients over real HTTP APIs: OpenAI, Gemini, Ollama, OpenAI-compatible
