"use client";
// A live line chart of samples over time, drawn by uPlot (a small canvas
// time-series library): the memory panel's and the migration view's. uPlot
// touches the DOM when it loads, so it is imported in the browser only,
// after mount.
import { useEffect, useRef } from "react";
import type uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries<K extends string> {
  label: string;
  stroke: string;
  key: K;
}

/** `t`: unix time in seconds; null: no figure at that instant. */
export type ChartSample<K extends string> = { t: number } & Record<K, number | null>;

function columns<K extends string>(
  samples: readonly ChartSample<K>[],
  series: readonly ChartSeries<K>[],
): uPlot.AlignedData {
  return [samples.map((s) => s.t), ...series.map((line) => samples.map((s) => s[line.key]))];
}

export function TimeChart<K extends string>({
  samples,
  series,
  unit,
  testId,
  height = 220,
}: {
  samples: ChartSample<K>[];
  series: readonly ChartSeries<K>[];
  unit: string;
  testId: string;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const latest = useRef({ samples, series });
  latest.current = { samples, series };

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | null = null;
    void import("uplot").then(({ default: UPlot }) => {
      const element = box.current;
      if (disposed || element === null) return;
      const lines = latest.current.series;
      chart.current = new UPlot(
        {
          width: Math.max(element.clientWidth, 300),
          height,
          scales: {
            x: { time: true },
            y: { range: (_u, min, max) => [0, Math.max(max, min, 1) * 1.1] },
          },
          axes: [{}, { label: unit, size: 60 }],
          series: [{}, ...lines.map((s) => ({ label: s.label, stroke: s.stroke, width: 2 }))],
        },
        columns(latest.current.samples, lines),
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
  }, [height, unit]);

  useEffect(() => {
    chart.current?.setData(columns(samples, latest.current.series));
  }, [samples]);

  return <div ref={box} data-testid={testId} data-samples={samples.length} />;
}
