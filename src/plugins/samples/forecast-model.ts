import { injectable } from 'tsyringe';
import type { City } from './city-catalog.js';

export interface DayForecast {
  date: string;
  highC: number;
  lowC: number;
  precipitationChance: number;
  condition: 'sunny' | 'cloudy' | 'rain' | 'snow';
}

const DAY_MS = 86_400_000;

/** FNV-1a over a string, scaled to [0, 1): a repeatable "weather noise" per city and date. */
function noise(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x100000000;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * A small climate model: the annual mean falls with latitude and altitude, the seasonal swing
 * grows with latitude and flips between hemispheres, and a repeatable noise term varies each day.
 */
@injectable()
export class ForecastModel {
  forecast(city: City, from: Date, days: number): DayForecast[] {
    const absLat = Math.abs(city.lat);
    const annualMean = 27 - 0.42 * absLat - 6.5 * (city.elevation / 1000);
    const swing = 0.32 * absLat;
    const start = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate());
    const out: DayForecast[] = [];
    for (let d = 0; d < days; d++) {
      const t = start + d * DAY_MS;
      const date = new Date(t).toISOString().slice(0, 10);
      const dayOfYear = Math.floor((t - Date.UTC(new Date(t).getUTCFullYear(), 0, 1)) / DAY_MS);
      // Warmest around day 200 in the north, day 17 in the south.
      const season = Math.cos((2 * Math.PI * (dayOfYear - (city.lat >= 0 ? 200 : 17))) / 365);
      const n = noise(`${city.name}|${date}`);
      const mean = annualMean + swing * season + (n - 0.5) * 6;
      const range = 6 + 6 * (1 - city.wetness) - 3 * n;
      const precipitationChance = Math.min(0.95, Math.max(0.02, city.wetness + (noise(`${date}|${city.name}`) - 0.5) * 0.6));
      const highC = round1(mean + range / 2);
      const lowC = round1(mean - range / 2);
      const condition = precipitationChance > 0.5 ? (lowC < 0 ? 'snow' : 'rain') : precipitationChance > 0.3 ? 'cloudy' : 'sunny';
      out.push({ date, highC, lowC, precipitationChance: Math.round(precipitationChance * 100) / 100, condition });
    }
    return out;
  }
}
