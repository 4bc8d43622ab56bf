// Coalesces bursts of calls (a flurry of events) into one call per key.

export function debounce(fn, ms) {
  const timers = new Map();
  return (key, ...args) => {
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      fn(key, ...args);
    }, ms));
  };
}
