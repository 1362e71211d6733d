import { defineService, z } from '../../contracts/index.js';
import type { DayForecast } from './forecast-model.js';

/**
 * The bundled services' contracts: names for people, and answer shapes for typed callers. Their
 * requests carry no schema: the plugins check bodies themselves and answer with their own codes
 * (BAD_DELAY, BAD_CITY, ...), which docs/services.md documents.
 */
export const echo = defineService({ key: 1, name: 'echo.echo', idempotent: true });

export const echoDelayed = defineService({ key: 2, name: 'echo.delayed', response: z.unknown() });

export const forecast = defineService({
  key: 101,
  name: 'weather.forecast',
  idempotent: true,
  timeoutMs: 2000,
  response: z.object({ city: z.string(), country: z.string(), days: z.array(z.custom<DayForecast>()) }),
});

export const cities = defineService({
  key: 102,
  name: 'weather.cities',
  idempotent: true,
  response: z.array(z.object({ name: z.string(), country: z.string(), lat: z.number(), lon: z.number() })),
});
