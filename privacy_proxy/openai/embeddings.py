"""`/v1/embeddings`: the input texts are scanned and rewritten like any prompt; the answer (vectors,
`float` or `base64`) holds no text and is relayed untouched.

What is embedded is the rewritten text: a pseudonymized name is embedded as its token, a redacted
one as `[PERSON]`. That is the policy's choice; a policy written for retrieval may prefer `redact`
(stable across documents) over `pseudonymize` (numbered per request).
"""

from __future__ import annotations

from typing import Any

from privacy_proxy.errors import BadRequest
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.openai.tokens import take_text_input

# What a LangChain user changes so the client sends text instead of token ids.
LANGCHAIN_HINT = (
    "With LangChain, create OpenAIEmbeddings(..., check_embedding_ctx_length=False) so it sends text "
    "(or make the model's tiktoken encoding file available to the proxy offline)."
)


class EmbeddingsRequest(TextRequest):
    def __init__(self, body: Any, *, token_arrays_mode: str = "detokenize") -> None:
        super().__init__(body)
        body = self.body
        self.require_model()
        take_text_input(self, "input", token_arrays_mode, LANGCHAIN_HINT)
        if body.get("encoding_format") not in (None, "float", "base64"):
            raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
        if "user" in body:
            self.add_free_text(body, "user", "user")

    @property
    def stream(self) -> bool:
        return False
