/**
 * A small hand-written SVG line chart: latency (log scale) against offered rate (linear),
 * one polyline per series, axes with ticks, labels, a legend and optional vertical markers.
 * A point whose y is +Infinity (sagas that never finished) is drawn as a hollow marker on
 * the top edge, off the line, rather than dropped. No dependencies: a standalone .svg file.
 */

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: Point[];
}

export interface Marker {
  x: number;
  label: string;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  markers?: Marker[];
  width?: number;
  height?: number;
}

const MARGIN = { top: 56, right: 250, bottom: 56, left: 72 };

/** Round ticks (1, 2, 5 × 10^k apart, about `count` of them) from min up to at least max. */
export function linearTicks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw)!;
  const ticks: number[] = [];
  for (let tick = Math.ceil(min / step) * step; ; tick += step) {
    ticks.push(Number(tick.toPrecision(12)));
    if (tick >= max - step * 1e-9) return ticks;
  }
}

/** Log-scale bounds: whole decades around the positive values (1–10 when there are none). */
export function logBounds(values: readonly number[]): { min: number; max: number } {
  const positive = values.filter((value) => value > 0 && Number.isFinite(value));
  if (positive.length === 0) return { min: 1, max: 10 };
  const min = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  let max = 10 ** Math.ceil(Math.log10(Math.max(...positive)));
  if (max <= min) max = min * 10;
  return { min, max };
}

/** 1, 2, 5 × each decade in [min, max]. */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = min; decade <= max * (1 + 1e-9); decade *= 10) {
    for (const factor of [1, 2, 5]) {
      const tick = Number((decade * factor).toPrecision(12));
      if (tick <= max * (1 + 1e-9)) ticks.push(tick);
    }
  }
  return ticks;
}

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (char) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[char]!};`,
  );
}

const fixed = (value: number): string => value.toFixed(1);

function formatTick(value: number): string {
  if (value >= 1000 && value % 1000 === 0) return `${value / 1000}k`;
  return String(value);
}

export function renderChart(options: ChartOptions): string {
  const width = options.width ?? 920;
  const height = options.height ?? 480;
  const plot = {
    left: MARGIN.left,
    top: MARGIN.top,
    width: width - MARGIN.left - MARGIN.right,
    height: height - MARGIN.top - MARGIN.bottom,
  };
  const drawable = options.series.map((series) => ({
    ...series,
    points: series.points
      .filter((point) => Number.isFinite(point.x) && Number.isFinite(point.y) && point.y > 0)
      .sort((a, b) => a.x - b.x),
    offChart: series.points.filter(
      (point) => Number.isFinite(point.x) && point.y === Number.POSITIVE_INFINITY,
    ),
  }));
  const xs = [
    ...drawable.flatMap((series) => [...series.points, ...series.offChart].map((point) => point.x)),
    ...(options.markers ?? []).map((marker) => marker.x),
  ];
  const xTicks = linearTicks(0, xs.length > 0 ? Math.max(...xs) * 1.05 : 10);
  const xMax = xTicks.at(-1)!;
  const yBounds = logBounds(drawable.flatMap((series) => series.points.map((point) => point.y)));
  const yTicks = logTicks(yBounds.min, yBounds.max);

  const xAt = (x: number): number => plot.left + (x / xMax) * plot.width;
  const yAt = (y: number): number => {
    const ratio =
      (Math.log10(y) - Math.log10(yBounds.min)) / (Math.log10(yBounds.max) - Math.log10(yBounds.min));
    return plot.top + plot.height - Math.min(1, Math.max(0, ratio)) * plot.height;
  };
  const bottom = plot.top + plot.height;
  const right = plot.left + plot.width;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${plot.left}" y="24" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`,
  );
  if (options.subtitle) {
    parts.push(`<text x="${plot.left}" y="42" fill="#555555">${escapeXml(options.subtitle)}</text>`);
  }

  // Grid and ticks.
  for (const tick of yTicks) {
    const y = fixed(yAt(tick));
    parts.push(
      `<line x1="${plot.left}" y1="${y}" x2="${right}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${plot.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(tick)}</text>`,
    );
  }
  for (const tick of xTicks) {
    const x = fixed(xAt(tick));
    parts.push(
      `<line x1="${x}" y1="${plot.top}" x2="${x}" y2="${bottom}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${bottom + 18}" text-anchor="middle">${formatTick(tick)}</text>`,
    );
  }
  // Axes and their labels.
  parts.push(
    `<line x1="${plot.left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#333333"/>`,
    `<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${bottom}" stroke="#333333"/>`,
    `<text x="${plot.left + plot.width / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="18" y="${plot.top + plot.height / 2}" text-anchor="middle" transform="rotate(-90 18 ${plot.top + plot.height / 2})">${escapeXml(options.yLabel)}</text>`,
  );

  for (const marker of options.markers ?? []) {
    const x = fixed(xAt(marker.x));
    parts.push(
      `<line x1="${x}" y1="${plot.top}" x2="${x}" y2="${bottom}" stroke="#888888" stroke-dasharray="2 4"/>`,
      `<text x="${x}" y="${plot.top - 6}" text-anchor="middle" fill="#555555">${escapeXml(marker.label)}</text>`,
    );
  }

  for (const series of drawable) {
    for (const point of series.offChart) {
      parts.push(
        `<circle cx="${fixed(xAt(point.x))}" cy="${plot.top}" r="4" fill="#ffffff" stroke="${series.color}" stroke-width="2"/>`,
      );
    }
    if (series.points.length === 0) continue;
    const coordinates = series.points.map((point) => `${fixed(xAt(point.x))},${fixed(yAt(point.y))}`);
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(
      `<polyline fill="none" stroke="${series.color}" stroke-width="2"${dash} points="${coordinates.join(' ')}"/>`,
      ...coordinates.map((coordinate) => {
        const [cx, cy] = coordinate.split(',');
        return `<circle cx="${cx}" cy="${cy}" r="3" fill="${series.color}"/>`;
      }),
    );
  }

  // Legend, right of the plot.
  const legendX = right + 16;
  options.series.forEach((series, index) => {
    const y = plot.top + 8 + index * 20;
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(
      `<line x1="${legendX}" y1="${y}" x2="${legendX + 24}" y2="${y}" stroke="${series.color}" stroke-width="2"${dash}/>`,
      `<text x="${legendX + 30}" y="${y}" dominant-baseline="middle">${escapeXml(series.name)}</text>`,
    );
  });
  if (drawable.some((series) => series.offChart.length > 0)) {
    const y = plot.top + 8 + options.series.length * 20 + 6;
    parts.push(
      `<circle cx="${legendX + 12}" cy="${y}" r="4" fill="#ffffff" stroke="#555555" stroke-width="2"/>`,
      `<text x="${legendX + 30}" y="${y}" dominant-baseline="middle">unfinished within the step</text>`,
    );
  }

  parts.push('</svg>', '');
  return parts.join('\n');
}
