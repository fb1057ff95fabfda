// EmbeddedMigrations() is generated at build time; see cmake/embed_migrations.cmake.
#include "store/sqlite/migrations.h"
