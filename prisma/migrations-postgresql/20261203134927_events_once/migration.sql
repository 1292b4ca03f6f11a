-- Each host's event stream is stored once, however many portals watch it:
-- (hostId, seq) becomes unique and the watchers insert with ON CONFLICT DO
-- NOTHING. A stream stored twice before this keeps its first copy.
DELETE FROM "Event" WHERE "id" NOT IN (SELECT MIN("id") FROM "Event" GROUP BY "hostId", "seq");

-- DropIndex
DROP INDEX "Event_hostId_seq_idx";

-- CreateIndex
CREATE UNIQUE INDEX "Event_hostId_seq_key" ON "Event"("hostId", "seq");
