"use client";
// A live line chart of the guest's memory over time, drawn by uPlot (a
// small canvas time-series library). uPlot touches the DOM when it loads, so
// it is imported in the browser only, after mount.
import { useEffect, useRef } from "react";
import type uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface MemorySample {
  /** Unix time, seconds. */
  t: number;
  actualMiB: number | null;
  availableMiB: number | null;
  freeMiB: number | null;
}

const SERIES = [
  { label: "actual (guest memory)", stroke: "#2459d6", key: "actualMiB" },
  { label: "available", stroke: "#1f8a4c", key: "availableMiB" },
  { label: "free", stroke: "#b7791f", key: "freeMiB" },
] as const;

function columns(samples: readonly MemorySample[]): uPlot.AlignedData {
  return [samples.map((s) => s.t), ...SERIES.map((series) => samples.map((s) => s[series.key]))];
}

export function MemoryChart({
  samples,
  height = 220,
}: {
  samples: MemorySample[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const latest = useRef(samples);
  latest.current = samples;

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | null = null;
    void import("uplot").then(({ default: UPlot }) => {
      const element = box.current;
      if (disposed || element === null) return;
      chart.current = new UPlot(
        {
          width: Math.max(element.clientWidth, 300),
          height,
          scales: {
            x: { time: true },
            y: { range: (_u, min, max) => [0, Math.max(max, min, 1) * 1.1] },
          },
          axes: [{}, { label: "MiB", size: 60 }],
          series: [{}, ...SERIES.map((s) => ({ label: s.label, stroke: s.stroke, width: 2 }))],
        },
        columns(latest.current),
        element,
      );
      observer = new ResizeObserver(() => {
        chart.current?.setSize({ width: Math.max(element.clientWidth, 300), height });
      });
      observer.observe(element);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, [height]);

  useEffect(() => {
    chart.current?.setData(columns(samples));
  }, [samples]);

  return <div ref={box} data-testid="memory-chart" data-samples={samples.length} />;
}
