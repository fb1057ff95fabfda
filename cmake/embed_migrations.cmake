# Turns the schema/*.sql files into a C++ source with one entry per migration, in order.
# The version of a migration is the number its file name starts with.
set(body "")
foreach(input IN LISTS INPUTS)
  get_filename_component(name ${input} NAME)
  string(REGEX MATCH "^[0-9]+" version ${name})
  math(EXPR version "${version}")
  file(READ ${input} sql)
  string(APPEND body "    {${version}, \"${name}\", R\"sendq_sql(${sql})sendq_sql\"},\n")
endforeach()
file(WRITE ${OUTPUT}.tmp "// Generated from schema/*.sql by cmake/embed_migrations.cmake. Do not edit.\n#include \"store/sqlite/migrations.h\"\n\nnamespace sendq::store {\n\nconst std::vector<Migration>& EmbeddedMigrations() {\n  static const std::vector<Migration> kMigrations = {\n${body}  };\n  return kMigrations;\n}\n\n}  // namespace sendq::store\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
