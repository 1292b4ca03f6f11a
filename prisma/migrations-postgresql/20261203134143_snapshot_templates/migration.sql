-- AlterTable
ALTER TABLE "Vm" ADD COLUMN     "clonedFrom" TEXT;

-- AlterTable
ALTER TABLE "SnapshotTemplate" ADD COLUMN     "clonesMade" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "sizeBytes" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "sourceVmName" TEXT NOT NULL DEFAULT '';

