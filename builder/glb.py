"""GLB container read/write: kept as an import path; the one implementation is :mod:`builder.gltf.container`."""
from builder.gltf.container import (CHUNK_BIN, CHUNK_HEADER, CHUNK_JSON, GLB_MAGIC, GLB_VERSION, HEADER,
                                    GlbDocument, GlbFormatError, pad4, read_glb, write_glb)

__all__ = ["CHUNK_BIN", "CHUNK_HEADER", "CHUNK_JSON", "GLB_MAGIC", "GLB_VERSION", "HEADER", "GlbDocument",
           "GlbFormatError", "pad4", "read_glb", "write_glb"]
