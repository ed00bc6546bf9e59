session-key.zql:4:1: error: session keys (session(...) per ...) are not supported by this version of the engine [E0011]
