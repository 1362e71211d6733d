import { Plugin, Service } from '../decorators.js';
import { PluginError } from '../errors.js';
import { CityCatalog } from './city-catalog.js';
import { cities, forecast } from './contracts.js';
import { ForecastModel, type DayForecast } from './forecast-model.js';

export const WEATHER_FORECAST = 101;
export const WEATHER_CITIES = 102;

const MAX_DAYS = 14;

export interface ForecastRequest {
  city: string;
  days?: number;
  /** ISO date (YYYY-MM-DD) of the first day; today (UTC) when absent. */
  from?: string;
}

export interface ForecastReply {
  city: string;
  country: string;
  days: DayForecast[];
}

/** Weather forecasts computed per city and day; its catalogue and model come from its own container. */
@Plugin({ name: 'weather' })
export class WeatherPlugin {
  constructor(
    private readonly catalog: CityCatalog,
    private readonly model: ForecastModel,
  ) {}

  @Service(forecast)
  forecast(body: ForecastRequest | undefined): ForecastReply {
    if (typeof body?.city !== 'string') {
      throw new PluginError('BAD_CITY', 'body.city must be a city name; service 102 lists them');
    }
    const city = this.catalog.find(body.city);
    if (!city) throw new PluginError('UNKNOWN_CITY', `no forecast for "${body.city}"; service 102 lists the cities known`);
    const days = body.days ?? 3;
    if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
      throw new PluginError('BAD_DAYS', `body.days must be an integer from 1 to ${MAX_DAYS}`);
    }
    const from = body.from === undefined ? new Date() : parseDay(body.from);
    if (from === undefined) throw new PluginError('BAD_DATE', 'body.from must be a real calendar date written YYYY-MM-DD, such as 2026-11-23');
    if (from.getTime() < FIRST_DAY || from.getTime() + (days - 1) * DAY_MS > LAST_DAY) {
      throw new PluginError('BAD_DATE', 'the forecast must lie between 1900-01-01 and 9999-12-31; pick another body.from or fewer days');
    }
    return { city: city.name, country: city.country, days: this.model.forecast(city, from, days) };
  }

  @Service(cities)
  cities(): { name: string; country: string; lat: number; lon: number }[] {
    return this.catalog.all().map(({ name, country, lat, lon }) => ({ name, country, lat, lon }));
  }
}

const DAY_MS = 86_400_000;
const FIRST_DAY = Date.UTC(1900, 0, 1);
const LAST_DAY = Date.UTC(9999, 11, 31);

/** A YYYY-MM-DD date that exists (Date alone would roll 2026-02-30 over into March). */
function parseDay(text: unknown): Date | undefined {
  if (typeof text !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return undefined;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text ? d : undefined;
}
