import { afterEach, describe, expect, it, vi } from 'vitest';
import { PluginError } from '../../src/plugins/errors.js';
import { RequestContext, ServiceTable, type ServiceContext } from '../../src/plugins/service-table.js';
import { ECHO, ECHO_DELAYED, EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { WEATHER_CITIES, WEATHER_FORECAST, WeatherPlugin, type ForecastReply, type ForecastRequest } from '../../src/plugins/samples/weather-plugin.js';
import { Status } from '../../src/protocol/status.js';

const ctx = (serviceKey: number): ServiceContext => new RequestContext(serviceKey, 0, 1, 0, 'test');

/** Built through ServiceTable, so the weather plugin's catalogue and model come from DI. */
const table = new ServiceTable([EchoPlugin, WeatherPlugin]);

const call = (key: number, body: unknown): unknown => table.get(key)!.handler(body, ctx(key));
const forecast = (body: ForecastRequest): ForecastReply => call(WEATHER_FORECAST, body) as ForecastReply;

function pluginErrorOf(fn: () => unknown): PluginError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).status).toBe(Status.SERVICE_ERROR);
    return err as PluginError;
  }
  throw new Error('expected a PluginError');
}

const nextDay = (iso: string): string => new Date(Date.parse(`${iso}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

describe('EchoPlugin', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([[{ hi: 1 }], ['text'], [[1, 2, 3]], [null], [undefined]])('echoes %j', (body) => {
    expect(call(ECHO, body)).toEqual(body);
  });

  it('delayed answers with body.value after body.ms', async () => {
    vi.useFakeTimers();
    let done = false;
    const p = (call(ECHO_DELAYED, { ms: 1000, value: 'late' }) as Promise<unknown>).then((v) => {
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
    const p = call(ECHO_DELAYED, body) as Promise<unknown>;
    await expect(p).rejects.toBeInstanceOf(PluginError);
    await expect(p).rejects.toMatchObject({ code: 'BAD_DELAY', status: Status.SERVICE_ERROR });
  });
});

describe('WeatherPlugin', () => {
  it('forecasts 3 consecutive days for Beijing from 2026-11-23', () => {
    const r = forecast({ city: 'Beijing', days: 3, from: '2026-11-23' });
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

  it('gives consecutive dates across a month and a year end, for 14 days', () => {
    const r = forecast({ city: 'London', days: 14, from: '2026-12-25' });
    expect(r.days).toHaveLength(14);
    expect(r.days[0].date).toBe('2026-12-25');
    for (let i = 1; i < r.days.length; i++) expect(r.days[i].date).toBe(nextDay(r.days[i - 1].date));
    expect(r.days[13].date).toBe('2027-01-07');
  });

  it('defaults to 3 days', () => {
    expect(forecast({ city: 'Tokyo', from: '2026-05-01' }).days).toHaveLength(3);
  });

  it('looks cities up without regard to case or surrounding spaces', () => {
    expect(forecast({ city: '  beiJING ', from: '2026-11-23' }).city).toBe('Beijing');
  });

  it('is deterministic for the same input, including from a fresh table', () => {
    const req = { city: 'Beijing', days: 5, from: '2026-11-23' };
    const again = new ServiceTable([WeatherPlugin]);
    expect(forecast(req)).toEqual(forecast(req));
    expect(again.get(WEATHER_FORECAST)!.handler(req, ctx(WEATHER_FORECAST))).toEqual(forecast(req));
  });

  it('differs between cities on the same date', () => {
    const a = forecast({ city: 'Beijing', days: 3, from: '2026-11-23' }).days;
    const b = forecast({ city: 'Singapore', days: 3, from: '2026-11-23' }).days;
    expect(a.map((d) => [d.highC, d.lowC])).not.toEqual(b.map((d) => [d.highC, d.lowC]));
    // Singapore sits on the equator at sea level; Beijing in late November is far colder.
    expect(b[0].highC).toBeGreaterThan(a[0].highC);
  });

  const mean = (r: ForecastReply): number => r.days.reduce((s, d) => s + (d.highC + d.lowC) / 2, 0) / r.days.length;

  it('follows the seasons: a northern city is warmer in July than in January', () => {
    const jan = forecast({ city: 'Beijing', days: 7, from: '2026-01-15' });
    const jul = forecast({ city: 'Beijing', days: 7, from: '2026-07-15' });
    expect(jan.days).not.toEqual(jul.days);
    expect(mean(jul)).toBeGreaterThan(mean(jan));
    expect(jul.days[0].highC).toBeGreaterThan(jan.days[0].highC);
  });

  it('follows the seasons: Sydney (southern) is warmer in January than in July', () => {
    const jan = forecast({ city: 'Sydney', days: 7, from: '2026-01-15' });
    const jul = forecast({ city: 'Sydney', days: 7, from: '2026-07-15' });
    expect(mean(jan)).toBeGreaterThan(mean(jul));
    expect(jan.days[0].highC).toBeGreaterThan(jul.days[0].highC);
  });

  it('refuses an unknown city with UNKNOWN_CITY', () => {
    expect(pluginErrorOf(() => forecast({ city: 'Atlantis', from: '2026-11-23' })).code).toBe('UNKNOWN_CITY');
  });

  it('refuses a missing city with BAD_CITY', () => {
    expect(pluginErrorOf(() => call(WEATHER_FORECAST, {})).code).toBe('BAD_CITY');
    expect(pluginErrorOf(() => call(WEATHER_FORECAST, undefined)).code).toBe('BAD_CITY');
  });

  it.each([0, 15, -1, 2.5])('refuses days = %s with BAD_DAYS', (days) => {
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', days, from: '2026-11-23' })).code).toBe('BAD_DAYS');
  });

  it.each([1, 14])('accepts days = %s', (days) => {
    expect(forecast({ city: 'Beijing', days, from: '2026-11-23' }).days).toHaveLength(days);
  });

  it.each(['yesterday', '2026-13-01', '23/11/2026', '2026-11-23T10:00:00Z', ''])('refuses from = %j with BAD_DATE', (from) => {
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', from })).code).toBe('BAD_DATE');
  });

  it('refuses a calendar-impossible date with BAD_DATE', () => {
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', from: '2026-02-30' })).code).toBe('BAD_DATE');
  });

  it('refuses a forecast outside 1900-01-01 to 9999-12-31 with BAD_DATE, and takes its edges', () => {
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', from: '1899-12-31', days: 1 })).code).toBe('BAD_DATE');
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', from: '0050-03-01', days: 1 })).code).toBe('BAD_DATE');
    expect(pluginErrorOf(() => forecast({ city: 'Beijing', from: '9999-12-30', days: 3 })).code).toBe('BAD_DATE');
    expect(forecast({ city: 'Beijing', from: '1900-01-01', days: 1 }).days[0].date).toBe('1900-01-01');
    expect(forecast({ city: 'Beijing', from: '9999-12-29', days: 3 }).days[2].date).toBe('9999-12-31');
  });

  it('lists 12 cities with names and coordinates (service 102)', () => {
    const cities = call(WEATHER_CITIES, undefined) as { name: string; country: string; lat: number; lon: number }[];
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
    for (const c of cities) expect(forecast({ city: c.name, days: 1, from: '2026-11-23' }).city).toBe(c.name);
  });
});
