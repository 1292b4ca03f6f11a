"use client";
// The memory panel's chart: the guest's memory over time (time-chart.tsx).
import { TimeChart, type ChartSample } from "./time-chart";

const SERIES = [
  { label: "actual (guest memory)", stroke: "#2459d6", key: "actualMiB" },
  { label: "available", stroke: "#1f8a4c", key: "availableMiB" },
  { label: "free", stroke: "#b7791f", key: "freeMiB" },
] as const;

export type MemorySample = ChartSample<(typeof SERIES)[number]["key"]>;

export function MemoryChart({ samples, height }: { samples: MemorySample[]; height?: number }) {
  return (
    <TimeChart
      samples={samples}
      series={SERIES}
      unit="MiB"
      testId="memory-chart"
      {...(height === undefined ? {} : { height })}
    />
  );
}
