"""The image task's serving adapter: KServe v2 / TF Serving REST / upload endpoints (protocols.py), batch
decoding of encoded files in the inference thread (inputs.BatchDecoder) and the drop-an-image page."""

from __future__ import annotations

import json
from pathlib import Path

from kiln.tasks.base import Adapter

STATIC = Path(__file__).parent / "static"


class ImageAdapter(Adapter):
    def routes(self) -> list:
        from kiln.tasks.image.serve.protocols import router

        return list(router.routes)

    def metadata(self) -> dict:
        from kiln.tasks.image.serve.protocols import _v2_metadata

        return _v2_metadata(self.served)

    def decode(self, rows: list):
        return self.decoder(rows)

    @property
    def decoder(self):
        from kiln.tasks.image.serve.inputs import BatchDecoder

        if not hasattr(self, "_decoder"):
            self._decoder = BatchDecoder(self.served.spec)
        return self._decoder

    def warm(self, state) -> None:
        """Decode a small PNG and JPEG (batched, and through Pillow) so the first request does not pay
        TensorFlow's tracing and op setup; then every batch size the model will see."""
        import io

        import numpy as np
        from PIL import Image

        from kiln.tasks.image.serve.inputs import decode_image

        blobs = []
        for fmt in ("PNG", "JPEG"):
            buf = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, fmt)
            blobs.append(buf.getvalue())
            decode_image(blobs[-1], self.served.spec, 64)
        state.batcher.decode(blobs)
        state.batcher.decode(blobs[:1])
        state.batcher.warm_inputs(np.zeros((1, *self.served.spec.shape), np.uint8))

    def describe(self) -> str:
        what = f"{len(self.served.classes)} classes" if self.served.classes else f"a value ({target_name(self.served)})"
        return f"{what}, input {'x'.join(map(str, self.served.spec.shape))} uint8"

    def page(self, state) -> str:
        served = self.served
        config = json.dumps({"model": served.name, "auth": bool(state.api_key), "classes": len(served.classes or []),
                             "target": None if served.classes else target_name(served),
                             "input": list(served.spec.shape), "platform": served.platform}).replace("<", "\\u003c")
        return (STATIC / "index.html").read_text().replace("__KILN_CONFIG__", config)


def target_name(served) -> str:
    """The column a regression model predicts (run.json / export.json "target")."""
    return str((served.meta.get("target") or {}).get("name", "value"))
