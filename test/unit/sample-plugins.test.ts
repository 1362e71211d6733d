import 'reflect-metadata';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestBed, type TestBed } from '../../src/function-server/test-bed.js';
import { ECHO, ECHO_DELAYED, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WEATHER_CITIES, WEATHER_FORECAST, WeatherPlugin, type ForecastReply, type ForecastRequest } from '../../src/plugins/samples/weather-plugin.js';
import { ServiceFailedError, Status } from '../../src/protocol/index.js';

/**
 * The bundled plugins, called through the test bed: each body is encoded to msgpack and decoded,
 * the handler runs as on a real FS (its catalogue and model come from DI), and its answer or its
 * PluginError comes back the way a client sees it.
 */
let bed: TestBed;
beforeAll(async () => {
  bed = await createTestBed({ plugins: [EchoPlugin, WeatherPlugin] });
});
afterAll(() => bed.close());

const call = (key: number, body: unknown): Promise<unknown> => bed.call(key, body);
const forecast = (body: ForecastRequest): Promise<ForecastReply> => call(WEATHER_FORECAST, body) as Promise<ForecastReply>;

/** The call fails as a plugin's own error does for a client: SERVICE_ERROR, its code as serviceCode. */
async function serviceCodeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceFailedError);
  expect((err as ServiceFailedError).status).toBe(Status.SERVICE_ERROR);
  expect((err as ServiceFailedError).code).toBe('SB_ERR_SERVICE');
  return (err as ServiceFailedError).serviceCode;
}

const nextDay = (iso: string): string => new Date(Date.parse(`${iso}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

describe('EchoPlugin', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([[{ hi: 1 }], ['text'], [[1, 2, 3]], [null], [undefined]])('echoes %j', async (body) => {
    expect(await call(ECHO, body)).toEqual(body);
  });

  it('delayed answers with body.value after body.ms', async () => {
    vi.useFakeTimers();
    let done = false;
    const p = call(ECHO_DELAYED, { ms: 1000, value: 'late' }).then((v) => {
      done = true;
      return v;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await p).toBe('late');
  });

  it.each([
    ['missing body', undefined],
    ['missing ms', { value: 1 }],
    ['a string', { ms: '10' }],
    ['negative', { ms: -1 }],
    ['NaN', { ms: Number.NaN }],
    ['Infinity', { ms: Number.POSITIVE_INFINITY }],
    ['over the 60 s cap', { ms: 60_001 }],
  ])('delayed rejects ms that is %s with BAD_DELAY', async (_label, body) => {
    expect(await serviceCodeOf(call(ECHO_DELAYED, body))).toBe('BAD_DELAY');
  });
});

describe('WeatherPlugin', () => {
  it('forecasts 3 consecutive days for Beijing from 2026-11-23', async () => {
    const r = await forecast({ city: 'Beijing', days: 3, from: '2026-11-23' });
    expect(r.city).toBe('Beijing');
    expect(r.country).toBe('CN');
    expect(r.days.map((d) => d.date)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25']);
    for (const d of r.days) {
      expect(d.highC).toBeGreaterThanOrEqual(d.lowC);
      expect(d.precipitationChance).toBeGreaterThanOrEqual(0);
      expect(d.precipitationChance).toBeLessThanOrEqual(1);
      expect(['sunny', 'cloudy', 'rain', 'snow']).toContain(d.condition);
    }
  });

  it('gives consecutive dates across a month and a year end, for 14 days', async () => {
    const r = await forecast({ city: 'London', days: 14, from: '2026-12-25' });
    expect(r.days).toHaveLength(14);
    expect(r.days[0].date).toBe('2026-12-25');
    for (let i = 1; i < r.days.length; i++) expect(r.days[i].date).toBe(nextDay(r.days[i - 1].date));
    expect(r.days[13].date).toBe('2027-01-07');
  });

  it('defaults to 3 days', async () => {
    expect((await forecast({ city: 'Tokyo', from: '2026-05-01' })).days).toHaveLength(3);
  });

  it('looks cities up without regard to case or surrounding spaces', async () => {
    expect((await forecast({ city: '  beiJING ', from: '2026-11-23' })).city).toBe('Beijing');
  });

  it('is deterministic for the same input, including from a fresh test bed', async () => {
    const req = { city: 'Beijing', days: 5, from: '2026-11-23' };
    const again = await createTestBed({ plugins: [WeatherPlugin] });
    try {
      expect(await forecast(req)).toEqual(await forecast(req));
      expect(await again.call(WEATHER_FORECAST, req)).toEqual(await forecast(req));
    } finally {
      await again.close();
    }
  });

  it('differs between cities on the same date', async () => {
    const a = (await forecast({ city: 'Beijing', days: 3, from: '2026-11-23' })).days;
    const b = (await forecast({ city: 'Singapore', days: 3, from: '2026-11-23' })).days;
    expect(a.map((d) => [d.highC, d.lowC])).not.toEqual(b.map((d) => [d.highC, d.lowC]));
    // Singapore sits on the equator at sea level; Beijing in late November is far colder.
    expect(b[0].highC).toBeGreaterThan(a[0].highC);
  });

  const mean = (r: ForecastReply): number => r.days.reduce((s, d) => s + (d.highC + d.lowC) / 2, 0) / r.days.length;

  it('follows the seasons: a northern city is warmer in July than in January', async () => {
    const jan = await forecast({ city: 'Beijing', days: 7, from: '2026-01-15' });
    const jul = await forecast({ city: 'Beijing', days: 7, from: '2026-07-15' });
    expect(jan.days).not.toEqual(jul.days);
    expect(mean(jul)).toBeGreaterThan(mean(jan));
    expect(jul.days[0].highC).toBeGreaterThan(jan.days[0].highC);
  });

  it('follows the seasons: Sydney (southern) is warmer in January than in July', async () => {
    const jan = await forecast({ city: 'Sydney', days: 7, from: '2026-01-15' });
    const jul = await forecast({ city: 'Sydney', days: 7, from: '2026-07-15' });
    expect(mean(jan)).toBeGreaterThan(mean(jul));
    expect(jan.days[0].highC).toBeGreaterThan(jul.days[0].highC);
  });

  it('refuses an unknown city with UNKNOWN_CITY', async () => {
    expect(await serviceCodeOf(forecast({ city: 'Atlantis', from: '2026-11-23' }))).toBe('UNKNOWN_CITY');
  });

  it('refuses a missing city with BAD_CITY', async () => {
    expect(await serviceCodeOf(call(WEATHER_FORECAST, {}))).toBe('BAD_CITY');
    expect(await serviceCodeOf(call(WEATHER_FORECAST, undefined))).toBe('BAD_CITY');
  });

  it.each([0, 15, -1, 2.5])('refuses days = %s with BAD_DAYS', async (days) => {
    expect(await serviceCodeOf(forecast({ city: 'Beijing', days, from: '2026-11-23' }))).toBe('BAD_DAYS');
  });

  it.each([1, 14])('accepts days = %s', async (days) => {
    expect((await forecast({ city: 'Beijing', days, from: '2026-11-23' })).days).toHaveLength(days);
  });

  it.each(['yesterday', '2026-13-01', '23/11/2026', '2026-11-23T10:00:00Z', ''])('refuses from = %j with BAD_DATE', async (from) => {
    expect(await serviceCodeOf(forecast({ city: 'Beijing', from }))).toBe('BAD_DATE');
  });

  it('refuses a calendar-impossible date with BAD_DATE', async () => {
    expect(await serviceCodeOf(forecast({ city: 'Beijing', from: '2026-02-30' }))).toBe('BAD_DATE');
  });

  it('refuses a forecast outside 1900-01-01 to 9999-12-31 with BAD_DATE, and takes its edges', async () => {
    expect(await serviceCodeOf(forecast({ city: 'Beijing', from: '1899-12-31', days: 1 }))).toBe('BAD_DATE');
    expect(await serviceCodeOf(forecast({ city: 'Beijing', from: '0050-03-01', days: 1 }))).toBe('BAD_DATE');
    expect(await serviceCodeOf(forecast({ city: 'Beijing', from: '9999-12-30', days: 3 }))).toBe('BAD_DATE');
    expect((await forecast({ city: 'Beijing', from: '1900-01-01', days: 1 })).days[0].date).toBe('1900-01-01');
    expect((await forecast({ city: 'Beijing', from: '9999-12-29', days: 3 })).days[2].date).toBe('9999-12-31');
  });

  it('lists 12 cities with names and coordinates (service 102)', async () => {
    const cities = (await call(WEATHER_CITIES, undefined)) as { name: string; country: string; lat: number; lon: number }[];
    expect(cities).toHaveLength(12);
    expect(new Set(cities.map((c) => c.name)).size).toBe(12);
    for (const c of cities) {
      expect(c.name.length).toBeGreaterThan(0);
      expect(c.country).toMatch(/^[A-Z]{2}$/);
      expect(Math.abs(c.lat)).toBeLessThanOrEqual(90);
      expect(Math.abs(c.lon)).toBeLessThanOrEqual(180);
    }
    expect(cities.map((c) => c.name)).toEqual(expect.arrayContaining(['Beijing', 'Sydney']));
    // Every listed city can be forecast.
    for (const c of cities) expect((await forecast({ city: c.name, days: 1, from: '2026-11-23' })).city).toBe(c.name);
  });
});
