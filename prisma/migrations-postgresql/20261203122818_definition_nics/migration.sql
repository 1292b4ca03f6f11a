-- AlterTable
ALTER TABLE "VmDefinition" ADD COLUMN     "nics" TEXT NOT NULL DEFAULT '[]';

