# Turns docs/openapi.json into a C++ source, so that GET /openapi.json serves the same bytes.
# The document is split into pieces, each well under the length compilers guarantee for one
# string literal.
file(READ ${INPUT} document)
string(LENGTH "${document}" length)
set(body "")
set(offset 0)
while(offset LESS length)
  string(SUBSTRING "${document}" ${offset} 8000 piece)
  string(APPEND body "      R\"sendq_doc(${piece})sendq_doc\"\n")
  math(EXPR offset "${offset} + 8000")
endwhile()
file(WRITE ${OUTPUT}.tmp "// Generated from docs/openapi.json by cmake/embed_openapi.cmake. Do not edit.\n#include \"api/openapi.h\"\n\nnamespace sendq::api {\n\nconst std::string& OpenApiDocument() {\n  static const std::string kDocument = std::string(\n${body}  );\n  return kDocument;\n}\n\n}  // namespace sendq::api\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
