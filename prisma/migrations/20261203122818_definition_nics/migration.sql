-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_VmDefinition" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "config" TEXT NOT NULL,
    "nics" TEXT NOT NULL DEFAULT '[]',
    "builtIn" BOOLEAN NOT NULL DEFAULT false,
    "createdById" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "VmDefinition_createdById_fkey" FOREIGN KEY ("createdById") REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_VmDefinition" ("builtIn", "config", "createdAt", "createdById", "description", "id", "name", "updatedAt") SELECT "builtIn", "config", "createdAt", "createdById", "description", "id", "name", "updatedAt" FROM "VmDefinition";
DROP TABLE "VmDefinition";
ALTER TABLE "new_VmDefinition" RENAME TO "VmDefinition";
CREATE UNIQUE INDEX "VmDefinition_name_key" ON "VmDefinition"("name");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
