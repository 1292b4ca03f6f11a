export default function Loading() {
  return <p className="muted">Loading…</p>;
}
