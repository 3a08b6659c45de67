"""The one glTF layer: GLB container, document building and grafting, bounds, conversions. No Flask.

    container   read_glb / write_glb, GlbDocument (JSON + BIN), GlbFormatError
    document    Document (build a glTF: buffer views, accessors, nodes; graft whole models), REFERENCES table
    bounds      node matrices, normalized accessor ranges, scene walks: bounds and triangle counts
    convert     trimesh scene → GLB, glTF with side files → GLB, clean converted GLBs

Used by upload checks (builder.importers) and packaging (builder.bundle, builder.compress, builder.stock).
"""
from builder.gltf.bounds import (accessor_range, default_scene_roots, model_bounds, node_matrix,
                                 primitive_triangles, scene_geometry, walk_meshes)
from builder.gltf.container import GlbDocument, GlbFormatError, pad4, read_glb, write_glb
from builder.gltf.convert import (GENERATOR, clean_converted_glb, data_uri_bytes, directory_reader, external_uris,
                                  load_gltf_json, pack_gltf_to_glb, scene_to_glb)
from builder.gltf.document import REFERENCES, Document, GraftError, shift_references, source_roots, strip_extras

__all__ = [
    "GENERATOR", "REFERENCES", "Document", "GlbDocument", "GlbFormatError", "GraftError", "accessor_range",
    "clean_converted_glb", "data_uri_bytes", "default_scene_roots", "directory_reader", "external_uris",
    "load_gltf_json", "model_bounds",
    "node_matrix", "pack_gltf_to_glb", "pad4", "primitive_triangles", "read_glb", "scene_geometry",
    "scene_to_glb", "shift_references", "source_roots", "strip_extras", "walk_meshes", "write_glb",
]
