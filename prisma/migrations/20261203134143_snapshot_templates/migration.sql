-- AlterTable
ALTER TABLE "Vm" ADD COLUMN "clonedFrom" TEXT;

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_SnapshotTemplate" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "hostId" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "config" TEXT NOT NULL,
    "memoryBytes" BIGINT NOT NULL,
    "sourceVmId" TEXT,
    "sourceVmName" TEXT NOT NULL DEFAULT '',
    "sizeBytes" BIGINT NOT NULL DEFAULT 0,
    "clonesMade" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "SnapshotTemplate_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_SnapshotTemplate" ("config", "createdAt", "hostId", "id", "memoryBytes", "name", "path", "sourceVmId") SELECT "config", "createdAt", "hostId", "id", "memoryBytes", "name", "path", "sourceVmId" FROM "SnapshotTemplate";
DROP TABLE "SnapshotTemplate";
ALTER TABLE "new_SnapshotTemplate" RENAME TO "SnapshotTemplate";
CREATE UNIQUE INDEX "SnapshotTemplate_name_key" ON "SnapshotTemplate"("name");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
